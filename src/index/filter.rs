//! Metadata filters of a query: field → allowed values, checked against an item's metadata
//! JSON text without building a map.

use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

/// Metadata conditions: every field must equal one of its listed values.
#[derive(Debug, Clone, Default)]
pub struct Filter(pub Vec<(String, Vec<Value>)>);

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether a metadata object, given as JSON text, meets every condition. Reads the text
    /// once, parsing only the filtered fields' values.
    pub fn matches_json(&self, json: &[u8]) -> bool {
        struct Probe<'f>(&'f Filter);
        impl<'de> Visitor<'de> for Probe<'_> {
            type Value = usize;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a metadata object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<usize, A::Error> {
                let mut matched = 0;
                while let Some(key) = map.next_key::<String>()? {
                    match self.0 .0.iter().find(|(field, _)| *field == key) {
                        Some((_, allowed)) => {
                            let value: Value = map.next_value()?;
                            matched += usize::from(allowed.contains(&value));
                        }
                        None => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(matched)
            }
        }
        if self.is_empty() {
            return true;
        }
        let mut de = serde_json::Deserializer::from_slice(json);
        serde::Deserializer::deserialize_map(&mut de, Probe(self))
            .is_ok_and(|matched| matched == self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_read_the_metadata_text() {
        let f = Filter(vec![
            ("section".into(), vec!["a".into(), "b".into()]),
            ("tier".into(), vec![1.into()]),
        ]);
        assert!(f.matches_json(br#"{"section":"b","tier":1,"other":[1,{"x":2}]}"#));
        assert!(!f.matches_json(br#"{"section":"c","tier":1}"#));
        assert!(!f.matches_json(br#"{"section":"a"}"#));
        assert!(!f.matches_json(br#"{"section":"a","tier":"1"}"#));
        assert!(Filter::default().matches_json(b"{}"));
    }
}
