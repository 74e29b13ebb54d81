//! Output and error file lines, in OpenAI's format: one line per `custom_id`,
//! `{"id": "batch_req_…", "custom_id", "response": {"status_code", "request_id", "body"},
//! "error": null}` for a request the endpoint answered (a 2xx goes to the output file, any
//! other status to the error file), and `{"id", "custom_id", "response": null,
//! "error": {"code", "message"}}` for one that never reached it (a malformed line, a duplicate
//! `custom_id`, a batch cancelled or expired before it ran).

use serde::Serialize;
use serde_json::Value;

use super::{input::LineError, types::new_id};

#[derive(Debug, Serialize)]
struct Line<'a> {
    id: String,
    custom_id: Option<&'a str>,
    response: Option<Response<'a>>,
    error: Option<ErrorBody<'a>>,
}

#[derive(Debug, Serialize)]
struct Response<'a> {
    status_code: u16,
    request_id: String,
    body: &'a Value,
}

#[derive(Debug, Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: &'a str,
}

/// The line for a request the endpoint answered with `status` and `body`.
pub fn answered(custom_id: &str, status: u16, body: &Value) -> String {
    encode(&Line {
        id: new_id("batch_req_"),
        custom_id: Some(custom_id),
        response: Some(Response {
            status_code: status,
            request_id: new_id("req_"),
            body,
        }),
        error: None,
    })
}

/// The line for a request that never reached the endpoint.
pub fn refused(error: &LineError) -> String {
    encode(&Line {
        id: new_id("batch_req_"),
        custom_id: error.custom_id.as_deref(),
        response: None,
        error: Some(ErrorBody {
            code: error.code,
            message: &error.message,
        }),
    })
}

fn encode(line: &Line) -> String {
    let mut text = serde_json::to_string(line).expect("output lines serialise");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_have_openais_fields() {
        let ok: Value =
            serde_json::from_str(&answered("a", 200, &serde_json::json!({"x": 1}))).unwrap();
        assert_eq!(ok["custom_id"], "a");
        assert_eq!(ok["response"]["status_code"], 200);
        assert_eq!(ok["response"]["body"]["x"], 1);
        assert!(ok["error"].is_null());
        assert!(ok["id"].as_str().unwrap().starts_with("batch_req_"));
        let err = LineError {
            custom_id: None,
            code: "invalid_json",
            message: "bad".into(),
        };
        let bad: Value = serde_json::from_str(&refused(&err)).unwrap();
        assert!(bad["response"].is_null() && bad["custom_id"].is_null());
        assert_eq!(bad["error"]["code"], "invalid_json");
    }
}
