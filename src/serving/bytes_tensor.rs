//! KServe's BYTES tensor elements in their binary form, shared by the REST binary extension and
//! gRPC `raw_input_contents`: each element is a 4-byte little-endian length, then that many
//! bytes. Texts must be UTF-8.

use super::EmbedError;

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
