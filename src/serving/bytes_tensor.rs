//! KServe's text input, shared by the REST and gRPC dialects: the checks of its one BYTES input
//! tensor and its shape, and the elements in binary form (the REST binary extension and gRPC
//! `raw_input_contents`): each element is a 4-byte little-endian length, then that many bytes.
//! Texts must be UTF-8.

use super::EmbedError;

/// A text model's one input: exactly one tensor, named `name`, of datatype BYTES. `inputs` are
/// the request's (name, datatype) pairs.
pub fn check_input(name: &str, inputs: &[(&str, &str)]) -> Result<(), EmbedError> {
    let invalid = |msg: String| Err(EmbedError::InvalidInput(msg));
    match inputs {
        [(n, _)] if *n != name => invalid(format!(
            "unknown input {n:?}; the model's input is `{name}`"
        )),
        [(_, datatype)] if *datatype != "BYTES" => invalid(format!(
            "input `{name}` must have datatype BYTES, got {datatype:?}"
        )),
        [_] => Ok(()),
        _ => invalid(format!(
            "expected exactly one input tensor `{name}`, got {}",
            inputs.len()
        )),
    }
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
    fn one_bytes_input_with_a_matching_shape() {
        assert!(check_input("text", &[("text", "BYTES")]).is_ok());
        for bad in [
            &[][..],
            &[("x", "BYTES")],
            &[("text", "FP32")],
            &[("text", "BYTES"); 2],
        ] {
            assert!(check_input("text", bad).is_err(), "{bad:?}");
        }
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
