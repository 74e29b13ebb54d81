//! KServe's text tensors, shared by the REST and gRPC dialects: a model's signature (its BYTES
//! inputs and its one FP32 output, by model kind), the checks of the inputs and their shapes,
//! and the elements in binary form (the REST binary extension and gRPC `raw_input_contents`):
//! each element is a 4-byte little-endian length, then that many bytes. Texts must be UTF-8.

use super::{ClassifyInput, EmbedError};
use crate::model::heads::ModelKind;

/// The input of texts, every model's.
pub const TEXT: &str = "text";
/// A reranker's or classifier's optional second input: each text's pair.
pub const TEXT_PAIR: &str = "text_pair";

/// A model's tensors: BYTES inputs (the texts first and required; the rest optional) and one
/// FP32 output `[n, width]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signature {
    pub inputs: &'static [&'static str],
    pub output: &'static str,
}

impl Signature {
    /// An embedding model: `text` → `embedding` `[n, dims]`; a reranker or classifier: `text`
    /// and optionally `text_pair` → `logits` `[n, labels]`.
    pub fn of(kind: ModelKind) -> Self {
        match kind {
            ModelKind::Embedding => Self {
                inputs: &[TEXT],
                output: "embedding",
            },
            ModelKind::Reranker | ModelKind::Classifier => Self {
                inputs: &[TEXT, TEXT_PAIR],
                output: "logits",
            },
        }
    }

    /// The request's inputs (name, datatype) fit: BYTES, each known and given once, the texts
    /// present.
    pub fn check_inputs(&self, inputs: &[(&str, &str)]) -> Result<(), EmbedError> {
        let invalid = |msg: String| Err(EmbedError::InvalidInput(msg));
        let known = self
            .inputs
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(" and optionally ");
        for (i, (name, datatype)) in inputs.iter().enumerate() {
            if !self.inputs.contains(name) {
                return invalid(format!(
                    "unknown input {name:?}; the model's inputs are {known}"
                ));
            }
            if *datatype != "BYTES" {
                return invalid(format!(
                    "input `{name}` must have datatype BYTES, got {datatype:?}"
                ));
            }
            if inputs[..i].iter().any(|(other, _)| other == name) {
                return invalid(format!("input `{name}` is given twice"));
            }
        }
        match inputs.iter().any(|(name, _)| *name == self.inputs[0]) {
            true => Ok(()),
            false => invalid(format!(
                "input `{}` is required; the model's inputs are {known}",
                self.inputs[0]
            )),
        }
    }

    /// Requested outputs may only name the model's output.
    pub fn check_output(&self, name: &str) -> Result<(), EmbedError> {
        match name == self.output {
            true => Ok(()),
            false => Err(EmbedError::InvalidInput(format!(
                "unknown output {name:?}; the model's output is `{}`",
                self.output
            ))),
        }
    }
}

/// A reranker's or classifier's inputs: each text alone, or with its element of `text_pair`
/// (as many as there are texts).
pub fn classify_inputs(
    texts: Vec<String>,
    pairs: Option<Vec<String>>,
) -> Result<Vec<ClassifyInput>, EmbedError> {
    let Some(pairs) = pairs else {
        return Ok(texts.into_iter().map(ClassifyInput::Single).collect());
    };
    if pairs.len() != texts.len() {
        return Err(EmbedError::InvalidInput(format!(
            "`{TEXT_PAIR}` has {} elements for {} texts",
            pairs.len(),
            texts.len()
        )));
    }
    let zipped = texts.into_iter().zip(pairs);
    Ok(zipped.map(|(a, b)| ClassifyInput::Pair(a, b)).collect())
}

/// The tensor `name`'s `shape` holds exactly `count` elements.
pub fn check_shape(name: &str, shape: &[i64], count: usize) -> Result<(), EmbedError> {
    let elements = shape.iter().try_fold(1u64, |product, &dim| {
        product.checked_mul(u64::try_from(dim).ok()?)
    });
    match !shape.is_empty() && elements == Some(count as u64) {
        true => Ok(()),
        false => Err(EmbedError::InvalidInput(format!(
            "input `{name}` has shape {shape:?} but {count} elements"
        ))),
    }
}

/// The UTF-8 elements of a BYTES tensor named `tensor` in binary form.
pub fn decode(tensor: &str, mut data: &[u8]) -> Result<Vec<String>, EmbedError> {
    let mut texts = Vec::new();
    while !data.is_empty() {
        let malformed = || {
            EmbedError::InvalidInput(format!(
                "malformed BYTES data of `{tensor}`: element {} is cut short",
                texts.len()
            ))
        };
        let (len, rest) = data.split_first_chunk::<4>().ok_or_else(malformed)?;
        let len = u32::from_le_bytes(*len) as usize;
        let bytes = rest.get(..len).ok_or_else(malformed)?;
        texts.push(utf8(tensor, texts.len(), bytes)?);
        data = &rest[len..];
    }
    Ok(texts)
}

/// One BYTES element as text.
pub fn utf8(tensor: &str, index: usize, bytes: &[u8]) -> Result<String, EmbedError> {
    std::str::from_utf8(bytes).map(str::to_owned).map_err(|_| {
        EmbedError::InvalidInput(format!("element {index} of `{tensor}` is not UTF-8"))
    })
}

/// `texts` in binary form (what [`decode`] reads).
pub fn encode<S: AsRef<[u8]>>(texts: &[S]) -> Vec<u8> {
    let mut data = Vec::new();
    for text in texts {
        let text = text.as_ref();
        data.extend_from_slice(&(text.len() as u32).to_le_bytes());
        data.extend_from_slice(text);
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_fit_the_signature_and_shapes_their_elements() {
        let embedder = Signature::of(ModelKind::Embedding);
        assert!(embedder.check_inputs(&[("text", "BYTES")]).is_ok());
        for bad in [
            &[][..],
            &[("x", "BYTES")],
            &[("text", "FP32")],
            &[("text", "BYTES"); 2],
            &[("text", "BYTES"), ("text_pair", "BYTES")],
        ] {
            assert!(embedder.check_inputs(bad).is_err(), "{bad:?}");
        }
        let reranker = Signature::of(ModelKind::Reranker);
        assert!(reranker.check_inputs(&[("text", "BYTES")]).is_ok());
        assert!(reranker
            .check_inputs(&[("text_pair", "BYTES"), ("text", "BYTES")])
            .is_ok());
        let err = reranker
            .check_inputs(&[("text_pair", "BYTES")])
            .unwrap_err();
        assert!(err.to_string().contains("`text` is required"), "{err}");
        assert!(reranker.check_output("logits").is_ok());
        assert!(reranker.check_output("embedding").is_err());
        assert!(check_shape("text", &[2, 1], 2).is_ok());
        assert!(check_shape("text", &[3], 2).is_err());
        assert!(check_shape("text", &[], 1).is_err());
        assert!(check_shape("text", &[-1, -2], 2).is_err());
    }

    #[test]
    fn round_trips_and_refuses_cut_or_invalid_data() {
        let data = encode(&["héllo", "a b", ""]);
        assert_eq!(decode("text", &data).unwrap(), vec!["héllo", "a b", ""]);
        assert!(decode("text", &data[..data.len() - 1]).is_err());
        assert!(decode("text", &data[..data.len() - 5]).is_err());
        assert!(decode("text", &[1, 0]).is_err());
        let err = decode("text", &encode(&[[0xff_u8]])).unwrap_err();
        assert!(err.to_string().contains("not UTF-8"), "{err}");
    }
}
