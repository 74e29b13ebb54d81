//! The Batch API's objects, in OpenAI's wire shapes: files, batches and their request counts,
//! and the webhook events sent when a batch ends. The same types are written to the journal,
//! so what a client reads is exactly what was made durable.

use std::{
    collections::BTreeMap,
    time::{SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Seconds since the Unix epoch: every timestamp of the Batch API.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `prefix` followed by 24 random hex digits (`file-…`, `batch_…`, `evt_…`).
pub fn new_id(prefix: &str) -> String {
    let (a, b) = (fastrand::u64(..), fastrand::u32(..));
    format!("{prefix}{a:016x}{b:08x}")
}

/// What a file is for (OpenAI's `purpose`): `batch` inputs, and the `batch_output` files a
/// batch writes.
pub const PURPOSE_BATCH: &str = "batch";
pub const PURPOSE_OUTPUT: &str = "batch_output";

/// An uploaded or generated file (`GET /v1/files/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FileObject {
    pub id: String,
    /// Always `file`.
    #[serde(default = "file_object")]
    pub object: String,
    pub bytes: u64,
    pub created_at: u64,
    pub filename: String,
    /// `batch` (uploads) or `batch_output` (a batch's output and error files).
    pub purpose: String,
    /// Always `processed`: a file is acknowledged only once it is durable and checked.
    #[serde(default = "processed")]
    pub status: String,
}

fn file_object() -> String {
    "file".into()
}

fn processed() -> String {
    "processed".into()
}

impl FileObject {
    pub fn new(id: String, filename: String, purpose: &str, bytes: u64) -> Self {
        Self {
            id,
            object: file_object(),
            bytes,
            created_at: now(),
            filename,
            purpose: purpose.to_string(),
            status: processed(),
        }
    }
}

/// Where a batch is in its life; every batch ends in one of the last four.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BatchStatus {
    Validating,
    InProgress,
    Finalizing,
    Cancelling,
    Completed,
    Failed,
    Cancelled,
    Expired,
}

impl BatchStatus {
    pub const ALL: [Self; 8] = [
        Self::Validating,
        Self::InProgress,
        Self::Finalizing,
        Self::Cancelling,
        Self::Completed,
        Self::Failed,
        Self::Cancelled,
        Self::Expired,
    ];

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Failed | Self::Cancelled | Self::Expired
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Validating => "validating",
            Self::InProgress => "in_progress",
            Self::Finalizing => "finalizing",
            Self::Cancelling => "cancelling",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
        }
    }

    /// The webhook event a batch ending in this status sends.
    pub fn event_type(self) -> Option<&'static str> {
        match self {
            Self::Completed => Some("batch.completed"),
            Self::Failed => Some("batch.failed"),
            Self::Cancelled => Some("batch.cancelled"),
            Self::Expired => Some("batch.expired"),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RequestCounts {
    pub total: usize,
    pub completed: usize,
    pub failed: usize,
}

/// Why a batch failed as a whole (OpenAI's `errors`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BatchErrors {
    /// Always `list`.
    pub object: String,
    pub data: Vec<BatchErrorItem>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BatchErrorItem {
    pub code: String,
    pub message: String,
    pub param: Option<String>,
    pub line: Option<usize>,
}

impl BatchErrors {
    pub fn one(code: &str, message: String) -> Self {
        Self {
            object: "list".into(),
            data: vec![BatchErrorItem {
                code: code.into(),
                message,
                param: None,
                line: None,
            }],
        }
    }
}

/// Token usage of a batch: what its requests' `usage` fields add up to (embeddings produce no
/// output tokens).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BatchUsage {
    pub input_tokens: usize,
    pub input_tokens_details: InputTokensDetails,
    pub output_tokens: usize,
    pub output_tokens_details: OutputTokensDetails,
    pub total_tokens: usize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InputTokensDetails {
    pub cached_tokens: usize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OutputTokensDetails {
    pub reasoning_tokens: usize,
}

impl BatchUsage {
    pub fn add_input(&mut self, tokens: usize) {
        self.input_tokens += tokens;
        self.total_tokens += tokens;
    }
}

/// A batch (`GET /v1/batches/{id}`), with OpenAI's fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Batch {
    pub id: String,
    /// Always `batch`.
    pub object: String,
    pub endpoint: String,
    /// The model version that ran the batch, `name@version`, once its first chunk routed.
    pub model: Option<String>,
    pub errors: Option<BatchErrors>,
    pub input_file_id: String,
    pub completion_window: String,
    pub status: BatchStatus,
    pub output_file_id: Option<String>,
    pub error_file_id: Option<String>,
    pub created_at: u64,
    pub in_progress_at: Option<u64>,
    pub expires_at: Option<u64>,
    pub finalizing_at: Option<u64>,
    pub completed_at: Option<u64>,
    pub failed_at: Option<u64>,
    pub expired_at: Option<u64>,
    pub cancelling_at: Option<u64>,
    pub cancelled_at: Option<u64>,
    pub request_counts: RequestCounts,
    pub usage: BatchUsage,
    pub metadata: Option<BTreeMap<String, String>>,
}

impl Batch {
    /// A batch just created: `validating`, nothing run.
    pub fn new(
        id: String,
        endpoint: String,
        input: &FileObject,
        requests: usize,
        completion_window: String,
        window_seconds: u64,
        metadata: Option<BTreeMap<String, String>>,
    ) -> Self {
        let created_at = now();
        Self {
            id,
            object: "batch".into(),
            endpoint,
            model: None,
            errors: None,
            input_file_id: input.id.clone(),
            completion_window,
            status: BatchStatus::Validating,
            output_file_id: None,
            error_file_id: None,
            created_at,
            in_progress_at: None,
            expires_at: Some(created_at + window_seconds),
            finalizing_at: None,
            completed_at: None,
            failed_at: None,
            expired_at: None,
            cancelling_at: None,
            cancelled_at: None,
            request_counts: RequestCounts {
                total: requests,
                ..RequestCounts::default()
            },
            usage: BatchUsage::default(),
            metadata,
        }
    }

    /// Sets `status` and the timestamp that goes with it.
    pub fn set_status(&mut self, status: BatchStatus, at: u64) {
        self.status = status;
        let stamp = match status {
            BatchStatus::Validating => return,
            BatchStatus::InProgress => &mut self.in_progress_at,
            BatchStatus::Finalizing => &mut self.finalizing_at,
            BatchStatus::Cancelling => &mut self.cancelling_at,
            BatchStatus::Completed => &mut self.completed_at,
            BatchStatus::Failed => &mut self.failed_at,
            BatchStatus::Cancelled => &mut self.cancelled_at,
            BatchStatus::Expired => &mut self.expired_at,
        };
        *stamp = Some(at);
    }
}

/// A webhook event (OpenAI's shape): `{"id", "object": "event", "type", "created_at",
/// "data": {"id"}}`, `data.id` being the batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    pub id: String,
    /// Always `event`.
    pub object: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub created_at: u64,
    pub data: EventData,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EventData {
    pub id: String,
}

impl Event {
    pub fn new(kind: &str, batch_id: &str, created_at: u64) -> Self {
        Self {
            id: new_id("evt_"),
            object: "event".into(),
            kind: kind.to_string(),
            created_at,
            data: EventData {
                id: batch_id.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_timestamps_and_events_follow_openai() {
        let file = FileObject::new("file-1".into(), "in.jsonl".into(), PURPOSE_BATCH, 10);
        let mut batch = Batch::new(
            "batch_1".into(),
            "/v1/embeddings".into(),
            &file,
            3,
            "24h".into(),
            86400,
            None,
        );
        assert_eq!(batch.request_counts.total, 3);
        assert_eq!(batch.expires_at, Some(batch.created_at + 86400));
        batch.set_status(BatchStatus::Completed, 42);
        assert_eq!(batch.completed_at, Some(42));
        let json = serde_json::to_value(&batch).unwrap();
        assert_eq!(json["status"], "completed");
        assert_eq!(json["object"], "batch");
        assert!(json["failed_at"].is_null());
        assert_eq!(BatchStatus::Expired.event_type(), Some("batch.expired"));
        assert_eq!(BatchStatus::InProgress.event_type(), None);
        assert_eq!(serde_json::to_value(&file).unwrap()["object"], "file");
        let event = serde_json::to_value(Event::new("batch.completed", "batch_1", 7)).unwrap();
        assert_eq!(event["type"], "batch.completed");
        assert_eq!(event["data"]["id"], "batch_1");
        assert!(event["id"].as_str().unwrap().starts_with("evt_"));
    }
}
