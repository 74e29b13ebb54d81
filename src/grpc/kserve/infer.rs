//! `ModelInfer`: one BYTES input tensor `text` of texts, in typed `contents.bytes_contents` or
//! in `raw_input_contents` (each element a 4-byte little-endian length, then the bytes), with
//! the request parameters `truncate` (default `--auto-truncate`) and `normalize` (default true)
//! as `bool_param`s; answers one FP32 tensor `embedding` `[n, dims]` through the one embedding
//! path, raw when the request was raw (as Triton answers), else in `fp32_contents`.

use std::collections::HashMap;

use super::{INPUT, OUTPUT};
use crate::{
    deploy::Target,
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
    serving::{bytes_tensor, EmbedRequest, ModelRef},
};

fn invalid(message: String) -> CallError {
    CallError::InvalidInput(message)
}

/// Embeds the request's texts on the version it routes to.
pub async fn run(
    state: &GrpcState,
    admitted: Admitted,
    route_key: Option<String>,
    req: ModelInferRequest,
) -> Result<ModelInferResponse, CallError> {
    let target = target(&req, route_key)?;
    let raw = !req.raw_input_contents.is_empty();
    let texts = input_texts(&req, state.limits.max_client_batch)?;
    check_outputs(&req)?;
    let n = texts.len();
    let request = EmbedRequest {
        truncation: Truncation::from_flag(flag(
            &req.parameters,
            "truncate",
            state.limits.auto_truncate,
        )?),
        normalize: flag(&req.parameters, "normalize", true)?,
        ..EmbedRequest::new(texts, admitted.deadline())
    };
    let routed = state.registry.route(&target)?;
    let embedded = routed.embed(request).await?;
    let info = &routed.handle.info;
    let flat: Vec<f32> = embedded.vectors.into_iter().flatten().collect();
    let mut output = InferOutputTensor {
        name: OUTPUT.into(),
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

/// The texts of the one BYTES input `text`, its shape matching the element count.
fn input_texts(req: &ModelInferRequest, max: usize) -> Result<Vec<String>, CallError> {
    let inputs: Vec<_> = req
        .inputs
        .iter()
        .map(|t| (t.name.as_str(), t.datatype.as_str()))
        .collect();
    bytes_tensor::check_input(INPUT, &inputs)?;
    let input = &req.inputs[0];
    let texts = elements(req, input)?;
    bytes_tensor::check_shape(INPUT, &input.shape, texts.len())?;
    check_texts(INPUT, &texts, max)?;
    Ok(texts)
}

/// The elements, from `raw_input_contents` (one entry per input) or `contents.bytes_contents`.
fn elements(req: &ModelInferRequest, input: &InferInputTensor) -> Result<Vec<String>, CallError> {
    let typed = input.contents.as_ref();
    match (req.raw_input_contents.as_slice(), typed) {
        ([raw], None) => Ok(bytes_tensor::decode(INPUT, raw)?),
        ([], Some(contents)) => {
            let texts = contents.bytes_contents.iter().enumerate();
            Ok(texts
                .map(|(i, bytes)| bytes_tensor::utf8(INPUT, i, bytes))
                .collect::<Result<_, _>>()?)
        }
        ([], None) => Err(invalid(format!(
            "input `{INPUT}` has no data: set `contents.bytes_contents` or `raw_input_contents`"
        ))),
        (raw, _) if raw.len() != 1 => Err(invalid(format!(
            "`raw_input_contents` has {} entries for 1 input",
            raw.len()
        ))),
        _ => Err(invalid(format!(
            "input `{INPUT}` has both `contents` and `raw_input_contents`"
        ))),
    }
}

/// Requested outputs may only name `embedding`.
fn check_outputs(req: &ModelInferRequest) -> Result<(), CallError> {
    match req.outputs.iter().find(|o| o.name != OUTPUT) {
        Some(o) => Err(invalid(format!(
            "unknown output {:?}; the model's output is `{OUTPUT}`",
            o.name
        ))),
        None => Ok(()),
    }
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

    fn request(
        raw: Option<Vec<u8>>,
        typed: Option<Vec<&str>>,
        shape: Vec<i64>,
    ) -> ModelInferRequest {
        ModelInferRequest {
            model_name: "m".into(),
            inputs: vec![InferInputTensor {
                name: INPUT.into(),
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
        assert_eq!(input_texts(&req, 8).unwrap(), vec!["a", "b c"]);
        let req = request(None, Some(vec!["x"]), vec![1]);
        assert_eq!(input_texts(&req, 8).unwrap(), vec!["x"]);
        assert!(input_texts(&request(Some(raw), None, vec![3]), 8).is_err());
        assert!(input_texts(&request(None, None, vec![0]), 8).is_err());
        assert!(input_texts(&request(None, Some(vec!["a", "b"]), vec![2]), 1).is_err());
        assert!(input_texts(&request(None, Some(vec![""]), vec![1]), 8).is_err());
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
