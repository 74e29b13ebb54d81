//! `ModelInfer`: BYTES input tensors in typed `contents.bytes_contents` or in
//! `raw_input_contents` (one entry per input; each element a 4-byte little-endian length, then
//! the bytes), with the request parameters `truncate` (default `--auto-truncate`) and
//! `normalize` (default true, embeddings) as `bool_param`s. An embedding model takes `text` and
//! answers FP32 `embedding` `[n, dims]` through the one embedding path; a reranker or
//! classifier takes `text` and optionally `text_pair` and answers FP32 `logits` `[n, labels]`
//! (see [`Signature`]). Raw when the request was raw (as Triton answers), else `fp32_contents`.

use std::collections::HashMap;

use crate::{
    deploy::{Target, TensorInputs},
    grpc::{
        call::{check_texts, Admitted},
        proto::inference::{
            infer_parameter::ParameterChoice, model_infer_request::InferInputTensor,
            model_infer_response::InferOutputTensor, InferParameter, InferTensorContents,
            ModelInferRequest, ModelInferResponse,
        },
        status::CallError,
        GrpcState,
    },
    model::tokenizer::Truncation,
    serving::{
        bytes_tensor::{self, Signature},
        ModelRef,
    },
};

fn invalid(message: String) -> CallError {
    CallError::InvalidInput(message)
}

/// Embeds the request's texts, or scores them (and their pairs) with a reranker's or
/// classifier's head, on the version it routes to.
pub async fn run(
    state: &GrpcState,
    admitted: Admitted,
    route_key: Option<String>,
    req: ModelInferRequest,
) -> Result<ModelInferResponse, CallError> {
    let target = target(&req, route_key)?;
    let routed = state.registry.route(&target)?;
    let signature = Signature::of(routed.handle.info.kind);
    let raw = !req.raw_input_contents.is_empty();
    let mut inputs = input_texts(&req, &signature, state.limits.max_client_batch)?;
    check_outputs(&req, &signature)?;
    let texts = inputs[0].take().expect("the texts are required");
    let n = texts.len();
    let truncation = Truncation::from_flag(flag(
        &req.parameters,
        "truncate",
        state.limits.auto_truncate,
    )?);
    let rows = routed
        .rows(TensorInputs {
            texts,
            pairs: inputs.get_mut(1).and_then(Option::take),
            truncation,
            normalize: flag(&req.parameters, "normalize", true)?,
            deadline: admitted.deadline(),
        })
        .await?;
    let info = &routed.handle.info;
    let flat: Vec<f32> = rows.into_iter().flatten().collect();
    let mut output = InferOutputTensor {
        name: signature.output.into(),
        datatype: "FP32".into(),
        shape: vec![n as i64, info.dimensions as i64],
        parameters: HashMap::new(),
        contents: None,
    };
    let mut raw_output_contents = Vec::new();
    match raw {
        true => raw_output_contents.push(flat.iter().flat_map(|x| x.to_le_bytes()).collect()),
        false => {
            output.contents = Some(InferTensorContents {
                fp32_contents: flat,
                ..Default::default()
            })
        }
    }
    Ok(ModelInferResponse {
        model_name: info.name.clone(),
        model_version: info.version.clone(),
        id: req.id,
        parameters: HashMap::new(),
        outputs: vec![output],
        raw_output_contents,
    })
}

/// The unversioned name routes (canary, shadow, sticky key); a version pins.
fn target(req: &ModelInferRequest, route_key: Option<String>) -> Result<Target, CallError> {
    if req.model_name.is_empty() {
        return Err(invalid("`model_name` is required".into()));
    }
    Ok(match req.model_version.as_str() {
        "" => Target {
            model: Some(ModelRef::named(&req.model_name)),
            route_key,
        },
        version => Target::pinned(ModelRef::pinned(&req.model_name, version)),
    })
}

/// The texts of each of the signature's inputs, in its order (`None` for an optional input the
/// request leaves out), each shape matching its element count.
fn input_texts(
    req: &ModelInferRequest,
    signature: &Signature,
    max: usize,
) -> Result<Vec<Option<Vec<String>>>, CallError> {
    let inputs: Vec<_> = req
        .inputs
        .iter()
        .map(|t| (t.name.as_str(), t.datatype.as_str()))
        .collect();
    signature.check_inputs(&inputs)?;
    let raw = req.raw_input_contents.as_slice();
    if !raw.is_empty() && raw.len() != req.inputs.len() {
        return Err(invalid(format!(
            "`raw_input_contents` has {} entries for {} inputs",
            raw.len(),
            req.inputs.len()
        )));
    }
    let mut found = vec![None; signature.inputs.len()];
    for (i, input) in req.inputs.iter().enumerate() {
        let texts = elements(raw.get(i), input)?;
        bytes_tensor::check_shape(&input.name, &input.shape, texts.len())?;
        check_texts(&input.name, &texts, max)?;
        let slot = signature.inputs.iter().position(|n| *n == input.name);
        found[slot.expect("checked against the signature")] = Some(texts);
    }
    Ok(found)
}

/// One input's elements, from its `raw_input_contents` entry or `contents.bytes_contents`.
fn elements(raw: Option<&Vec<u8>>, input: &InferInputTensor) -> Result<Vec<String>, CallError> {
    let name = input.name.as_str();
    match (raw, input.contents.as_ref()) {
        (Some(raw), None) => Ok(bytes_tensor::decode(name, raw)?),
        (None, Some(contents)) => {
            let texts = contents.bytes_contents.iter().enumerate();
            Ok(texts
                .map(|(i, bytes)| bytes_tensor::utf8(name, i, bytes))
                .collect::<Result<_, _>>()?)
        }
        (None, None) => Err(invalid(format!(
            "input `{name}` has no data: set `contents.bytes_contents` or `raw_input_contents`"
        ))),
        (Some(_), Some(_)) => Err(invalid(format!(
            "input `{name}` has both `contents` and `raw_input_contents`"
        ))),
    }
}

/// Requested outputs may only name the signature's output.
fn check_outputs(req: &ModelInferRequest, signature: &Signature) -> Result<(), CallError> {
    for output in &req.outputs {
        signature.check_output(&output.name)?;
    }
    Ok(())
}

/// A boolean request parameter, `default` when absent.
fn flag(
    parameters: &HashMap<String, InferParameter>,
    key: &str,
    default: bool,
) -> Result<bool, CallError> {
    match parameters.get(key).map(|p| &p.parameter_choice) {
        None => Ok(default),
        Some(Some(ParameterChoice::BoolParam(b))) => Ok(*b),
        Some(_) => Err(invalid(format!("parameter `{key}` must be a bool_param"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::heads::ModelKind;

    fn request(
        raw: Option<Vec<u8>>,
        typed: Option<Vec<&str>>,
        shape: Vec<i64>,
    ) -> ModelInferRequest {
        ModelInferRequest {
            model_name: "m".into(),
            inputs: vec![InferInputTensor {
                name: bytes_tensor::TEXT.into(),
                datatype: "BYTES".into(),
                shape,
                parameters: HashMap::new(),
                contents: typed.map(|t| InferTensorContents {
                    bytes_contents: t.iter().map(|s| s.as_bytes().to_vec()).collect(),
                    ..Default::default()
                }),
            }],
            raw_input_contents: raw.into_iter().collect(),
            ..Default::default()
        }
    }

    #[test]
    fn reads_raw_and_typed_bytes_and_checks_the_shape() {
        let raw = bytes_tensor::encode(&["a", "b c"]);
        let req = request(Some(raw.clone()), None, vec![2, 1]);
        let sig = Signature::of(ModelKind::Embedding);
        let texts =
            |req: &ModelInferRequest, max| input_texts(req, &sig, max).map(|mut t| t.remove(0));
        assert_eq!(
            texts(&req, 8).unwrap(),
            Some(vec!["a".into(), "b c".into()])
        );
        let req = request(None, Some(vec!["x"]), vec![1]);
        assert_eq!(texts(&req, 8).unwrap(), Some(vec!["x".into()]));
        assert!(texts(&request(Some(raw), None, vec![3]), 8).is_err());
        assert!(texts(&request(None, None, vec![0]), 8).is_err());
        assert!(texts(&request(None, Some(vec!["a", "b"]), vec![2]), 1).is_err());
        assert!(texts(&request(None, Some(vec![""]), vec![1]), 8).is_err());
    }

    #[test]
    fn parameters_must_be_bools() {
        let mut parameters = HashMap::new();
        assert!(flag(&parameters, "normalize", true).unwrap());
        let param = |choice| InferParameter {
            parameter_choice: Some(choice),
        };
        parameters.insert("normalize".into(), param(ParameterChoice::BoolParam(false)));
        assert!(!flag(&parameters, "normalize", true).unwrap());
        parameters.insert("normalize".into(), param(ParameterChoice::Int64Param(0)));
        assert!(flag(&parameters, "normalize", true).is_err());
    }
}
