//! Value parsers for flags: durations (`250ms`, `30s`) and `--index NAME=DIR|NAME=URL`.

use std::{path::PathBuf, time::Duration};

pub use crate::index::IndexLocation;

/// An index to serve: `name=dir`, `name=postgresql://…`, or `dir` (named after its last path
/// component).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSpec {
    pub name: String,
    pub location: IndexLocation,
}

impl std::str::FromStr for IndexSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bare_url = matches!(IndexLocation::parse(s.trim()), IndexLocation::Postgres(_));
        let (name, location) = match s.split_once('=') {
            Some((name, at)) if !bare_url => (name.trim().to_string(), at.trim()),
            _ if bare_url => (String::new(), s.trim()),
            _ => {
                let name = PathBuf::from(s.trim())
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (name, s.trim())
            }
        };
        let valid = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
        let location = IndexLocation::parse(location);
        let empty = matches!(&location, IndexLocation::Dir(d) if d.as_os_str().is_empty());
        if name.is_empty() || !name.chars().all(valid) || empty {
            let got = match location {
                IndexLocation::Postgres(_) => "a URL without a name".to_string(),
                IndexLocation::Dir(_) => format!("{s:?}"),
            };
            return Err(format!(
                "expected NAME=DIR or NAME=postgresql://… (name of letters, digits, - _ .), got {got}"
            ));
        }
        Ok(Self { name, location })
    }
}

/// Parses `250ms`, `30s`, `2m`, `1h` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. 500ms, 30s, 2m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "invalid duration unit {unit:?} in {s:?}: use ms, s, m or h"
            ))
        }
    };
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(format!(
            "invalid duration {s:?}: must be a non-negative number"
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
