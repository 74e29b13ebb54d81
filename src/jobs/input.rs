//! Batch input files: the checks an upload passes, how a batch's requests are cut into chunks,
//! and what one request line must hold.
//!
//! An input file is JSON lines, one request per non-blank line:
//! `{"custom_id": "...", "method": "POST", "url": "/v1/embeddings", "body": {...}}`.
//! An upload is refused (422) unless it is UTF-8 and every non-blank line is a JSON object, so
//! a truncated or binary file is caught at once; a line that is JSON but not a valid request
//! (no `custom_id`, a duplicate one, another method or endpoint, a bad body) is answered in the
//! batch's error file instead, and the rest of the batch runs.

use std::{
    collections::HashMap,
    fs::File,
    io::{BufRead, BufReader, Read, Seek, SeekFrom},
    path::Path,
};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::JobsError;

/// How many bad lines an upload refusal names.
const NAMED_BAD_LINES: usize = 5;

/// What an accepted upload holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scan {
    /// Requests: non-blank lines.
    pub lines: usize,
}

/// Checks an uploaded batch input file (see the module docs); at most `max_lines` requests.
pub fn scan_upload(path: &Path, max_lines: usize) -> Result<Scan, JobsError> {
    let file = File::open(path).map_err(|e| JobsError::storage("reading the upload", e))?;
    let mut lines = 0;
    let mut bad = Vec::new();
    for (n, line) in BufReader::new(file).split(b'\n').enumerate() {
        let line = line.map_err(|e| JobsError::storage("reading the upload", e))?;
        if is_blank(&line) {
            continue;
        }
        lines += 1;
        let object = std::str::from_utf8(&line)
            .ok()
            .and_then(|text| serde_json::from_str::<Value>(text).ok())
            .is_some_and(|v| v.is_object());
        if !object && bad.len() < NAMED_BAD_LINES {
            bad.push(n + 1);
        }
    }
    if !bad.is_empty() {
        let named: Vec<String> = bad.iter().map(usize::to_string).collect();
        return Err(JobsError::Invalid(format!(
            "the file is not JSON lines: line {} is not a UTF-8 JSON object (one request per \
             line: {{\"custom_id\", \"method\", \"url\", \"body\"}})",
            named.join(", ")
        )));
    }
    if lines == 0 {
        return Err(JobsError::Invalid(
            "the file holds no requests: expected one JSON request per line".into(),
        ));
    }
    if lines > max_lines {
        return Err(JobsError::Invalid(format!(
            "the file holds {lines} requests; at most {max_lines} are allowed per batch \
             (--batch-max-requests)"
        )));
    }
    Ok(Scan { lines })
}

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

/// A run of consecutive requests: the unit a batch is processed, made durable and claimed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    /// Byte offset of the chunk's first line in the input file.
    pub offset: u64,
    pub bytes: u64,
    /// 1-based line number of that first line.
    pub first_line: usize,
}

/// How a batch's input is cut, fixed when the batch is created.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub chunks: Vec<Span>,
    /// Line numbers whose `custom_id` an earlier line already used: answered as errors.
    pub duplicates: Vec<usize>,
    /// The model the batch's first request names (`body.model`); every request must name it.
    pub model: Option<String>,
}

/// Cuts `path` into chunks of `per_chunk` requests and finds duplicate `custom_id`s.
pub fn plan(path: &Path, per_chunk: usize) -> Result<Plan, JobsError> {
    let file = File::open(path).map_err(|e| JobsError::storage("reading the input file", e))?;
    let mut plan = Plan::default();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let (mut offset, mut in_chunk) = (0u64, 0usize);
    for (n, line) in BufReader::new(file).split(b'\n').enumerate() {
        let line = line.map_err(|e| JobsError::storage("reading the input file", e))?;
        let len = line.len() as u64 + 1;
        if !is_blank(&line) {
            if in_chunk == 0 {
                plan.chunks.push(Span {
                    offset,
                    bytes: 0,
                    first_line: n + 1,
                });
            }
            let fields: Option<Map<String, Value>> = serde_json::from_slice(&line).ok();
            let fields = fields.unwrap_or_default();
            if let Some(Value::String(id)) = fields.get("custom_id") {
                if seen.insert(id.clone(), n + 1).is_some() {
                    plan.duplicates.push(n + 1);
                }
            }
            if plan.model.is_none() {
                plan.model = model_of(&fields).map(str::to_string);
            }
            in_chunk += 1;
        }
        if let Some(chunk) = plan.chunks.last_mut() {
            chunk.bytes = offset + len - chunk.offset;
        }
        offset += len;
        if in_chunk == per_chunk {
            in_chunk = 0;
        }
    }
    Ok(plan)
}

fn model_of(fields: &Map<String, Value>) -> Option<&str> {
    fields.get("body")?.get("model")?.as_str()
}

/// The non-blank lines of one chunk, with their 1-based line numbers.
pub fn read_chunk(path: &Path, span: Span) -> Result<Vec<(usize, String)>, JobsError> {
    let read = || -> std::io::Result<Vec<u8>> {
        let mut file = File::open(path)?;
        file.seek(SeekFrom::Start(span.offset))?;
        let mut bytes = Vec::with_capacity(span.bytes as usize);
        file.take(span.bytes).read_to_end(&mut bytes)?;
        Ok(bytes)
    };
    let bytes = read().map_err(|e| JobsError::storage("reading the input file", e))?;
    let text = String::from_utf8_lossy(&bytes);
    Ok(text
        .split('\n')
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| (span.first_line + i, line.to_string()))
        .collect())
}

/// One request line, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestLine {
    pub custom_id: String,
    pub body: Value,
}

/// Why a line is not a request this batch runs; written to the error file with `code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// The line's `custom_id`, when it has one.
    pub custom_id: Option<String>,
    pub code: &'static str,
    pub message: String,
}

/// Checks one line of a batch whose endpoint is `endpoint` and whose model is `model`.
pub fn parse_line(
    line: &str,
    line_no: usize,
    endpoint: &str,
    model: Option<&str>,
) -> Result<RequestLine, LineError> {
    let fields: Map<String, Value> = serde_json::from_str(line).map_err(|e| LineError {
        custom_id: None,
        code: "invalid_json",
        message: format!("line {line_no} is not a JSON object: {e}"),
    })?;
    let custom_id = match fields.get("custom_id") {
        Some(Value::String(id)) if !id.is_empty() => id.clone(),
        _ => {
            return Err(LineError {
                custom_id: None,
                code: "missing_custom_id",
                message: format!("line {line_no} has no `custom_id` (a non-empty string)"),
            })
        }
    };
    let fail = |code, message: String| LineError {
        custom_id: Some(custom_id.clone()),
        code,
        message,
    };
    match fields.get("method").and_then(Value::as_str) {
        Some("POST") => {}
        other => {
            return Err(fail(
                "invalid_method",
                format!("line {line_no}: `method` must be \"POST\", got {other:?}"),
            ))
        }
    }
    let url = fields.get("url").and_then(Value::as_str);
    if url != Some(endpoint) {
        return Err(fail(
            "invalid_url",
            format!("line {line_no}: `url` must be the batch's endpoint {endpoint:?}, got {url:?}"),
        ));
    }
    let Some(body @ Value::Object(_)) = fields.get("body") else {
        return Err(fail(
            "invalid_body",
            format!("line {line_no}: `body` must be a JSON object"),
        ));
    };
    let named = body.get("model").and_then(Value::as_str);
    if let (Some(batch), Some(line)) = (model, named) {
        if batch != line {
            return Err(fail(
                "model_mismatch",
                format!(
                    "line {line_no} names model {line:?}, but a batch runs one model and its \
                     first request names {batch:?}"
                ),
            ));
        }
    }
    Ok(RequestLine {
        custom_id,
        body: body.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: &str, model: &str) -> String {
        serde_json::json!({
            "custom_id": id, "method": "POST", "url": "/v1/embeddings",
            "body": {"model": model, "input": "x"}
        })
        .to_string()
    }

    #[test]
    fn uploads_must_be_json_lines_with_requests() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.jsonl");
        std::fs::write(&path, format!("{}\n\n{}\n", line("a", "m"), line("b", "m"))).unwrap();
        assert_eq!(scan_upload(&path, 10).unwrap(), Scan { lines: 2 });
        let err = scan_upload(&path, 1).unwrap_err().to_string();
        assert!(err.contains("at most 1"), "{err}");
        std::fs::write(
            &path,
            format!("{}\n{{\"custom_id\": \"b\"\n[1]\n", line("a", "m")),
        )
        .unwrap();
        let err = scan_upload(&path, 10).unwrap_err().to_string();
        assert!(err.contains("line 2, 3"), "{err}");
        std::fs::write(&path, b"\xff\xfe\n").unwrap();
        assert!(scan_upload(&path, 10)
            .unwrap_err()
            .to_string()
            .contains("line 1"));
        std::fs::write(&path, "\n  \n").unwrap();
        assert!(scan_upload(&path, 10)
            .unwrap_err()
            .to_string()
            .contains("no requests"));
    }

    #[test]
    fn a_plan_cuts_chunks_at_request_boundaries_and_finds_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.jsonl");
        let lines = [
            line("a", "m"),
            line("b", "m"),
            String::new(),
            line("a", "m"),
            line("c", "m"),
        ];
        std::fs::write(&path, lines.join("\n")).unwrap(); // no final newline
        let plan = plan(&path, 2).unwrap();
        assert_eq!(plan.model.as_deref(), Some("m"));
        assert_eq!(plan.duplicates, [4]);
        assert_eq!(plan.chunks.len(), 2);
        let first = read_chunk(&path, plan.chunks[0]).unwrap();
        assert_eq!(first.iter().map(|(n, _)| *n).collect::<Vec<_>>(), [1, 2]);
        let second = read_chunk(&path, plan.chunks[1]).unwrap();
        assert_eq!(second.iter().map(|(n, _)| *n).collect::<Vec<_>>(), [4, 5]);
        assert_eq!(second[1].1, lines[4]);
    }

    #[test]
    fn request_lines_are_checked_field_by_field() {
        let ok = parse_line(&line("a", "m"), 1, "/v1/embeddings", Some("m")).unwrap();
        assert_eq!(ok.custom_id, "a");
        assert_eq!(ok.body["input"], "x");
        let code = |text: &str, model: Option<&str>| {
            parse_line(text, 3, "/v1/embeddings", model)
                .unwrap_err()
                .code
        };
        assert_eq!(code(&line("a", "other"), Some("m")), "model_mismatch");
        assert_eq!(code(r#"{"method":"POST"}"#, None), "missing_custom_id");
        assert_eq!(
            code(
                r#"{"custom_id":"a","method":"GET","url":"/v1/embeddings","body":{}}"#,
                None
            ),
            "invalid_method"
        );
        assert_eq!(
            code(
                r#"{"custom_id":"a","method":"POST","url":"/v1/chat","body":{}}"#,
                None
            ),
            "invalid_url"
        );
        assert_eq!(
            code(
                r#"{"custom_id":"a","method":"POST","url":"/v1/embeddings","body":[]}"#,
                None
            ),
            "invalid_body"
        );
        let err = parse_line(
            r#"{"custom_id":"z","method":"PUT"}"#,
            9,
            "/v1/embeddings",
            None,
        )
        .unwrap_err();
        assert_eq!(err.custom_id.as_deref(), Some("z"));
        assert!(err.message.contains("line 9"));
    }
}
