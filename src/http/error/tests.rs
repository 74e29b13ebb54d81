//! The error codes, statuses and bodies, and the redaction of server paths.

use super::*;
use crate::serving::policy::FlagReason;

fn all_variants() -> Vec<ApiError> {
    vec![
        ApiError::InvalidJson("x".into()),
        ApiError::InvalidUrl("x".into()),
        ApiError::UnsupportedMediaType,
        ApiError::PayloadTooLarge { limit: 1 },
        ApiError::ResponseTooLarge { bytes: 2, limit: 1 },
        ApiError::InvalidInput("x".into()),
        ApiError::UnsupportedParameter {
            param: "p",
            message: "x".into(),
        },
        ApiError::InvalidParameter {
            param: "p",
            message: "x".into(),
        },
        ApiError::InputTooLong {
            index: 0,
            tokens: 2,
            limit: 1,
        },
        ApiError::WrongModelKind("x".into()),
        ApiError::Unauthorized("x"),
    ]
    .into_iter()
    .chain(FlagReason::ALL.map(|reason| ApiError::InputFlagged {
        code: reason.code(),
        message: "x".into(),
    }))
    .chain([
        ApiError::Forbidden("x"),
        ApiError::RateLimited {
            retry_after: Duration::from_secs(1),
        },
        ApiError::ModelNotFound("m".into()),
        ApiError::UnknownModel {
            model: "m".into(),
            known: vec!["a".into()],
        },
        ApiError::TooManyTokens {
            tokens: 9,
            limit: 8,
        },
        ApiError::UnknownItem("i".into()),
        ApiError::UnknownIndex("x".into()),
        ApiError::Overloaded {
            retry_after: Duration::from_secs(1),
        },
        ApiError::DeadlineExceeded(Duration::from_secs(1)),
        ApiError::NotReady,
        ApiError::ShuttingDown,
        ApiError::TooManyConnections,
        ApiError::BodyTimeout(Duration::from_secs(1)),
        ApiError::StorageUnavailable,
        ApiError::IndexUnavailable("pg down".into()),
        ApiError::NotFound("/x".into()),
        ApiError::MethodNotAllowed,
        ApiError::Conflict("x".into()),
        ApiError::AgreementTooLow("x".into()),
        ApiError::LoadFailed("x".into()),
        ApiError::BatchApiDisabled("x".into()),
        ApiError::ResourceNotFound("x".into()),
        ApiError::Internal("boom".into()),
    ])
    .collect()
}

#[test]
fn codes_are_listed_and_client_errors_are_4xx() {
    let variants = all_variants();
    // Every code is some variant's (a code may serve several variants).
    let codes: std::collections::BTreeSet<_> = variants.iter().map(ApiError::code).collect();
    assert_eq!(codes.len(), ApiError::CODES.len());
    for err in variants {
        assert!(
            ApiError::CODES.contains(&err.code()),
            "{} unlisted",
            err.code()
        );
        let server_side = matches!(
            err,
            ApiError::Internal(_)
                | ApiError::Overloaded { .. }
                | ApiError::DeadlineExceeded(_)
                | ApiError::NotReady
                | ApiError::ShuttingDown
                | ApiError::TooManyConnections
                | ApiError::StorageUnavailable
                | ApiError::IndexUnavailable(_)
                | ApiError::BatchApiDisabled(_)
        );
        assert_eq!(
            err.status().is_server_error(),
            server_side,
            "{}",
            err.code()
        );
    }
}

#[test]
fn domain_errors_keep_their_status_and_code() {
    let cases: Vec<(ApiError, &str)> = vec![
        (
            EmbedError::DeadlineExceeded(Duration::from_secs(2)).into(),
            "deadline_exceeded",
        ),
        (
            EmbedError::Overloaded {
                retry_after: Duration::from_secs(1),
            }
            .into(),
            "overloaded",
        ),
        (EmbedError::InvalidInput("x".into()).into(), "invalid_input"),
        (
            EmbedError::InvalidParameter {
                param: "dimensions",
                message: "x".into(),
            }
            .into(),
            "invalid_input",
        ),
        (DeployError::NotReady.into(), "not_ready"),
        (
            DeployError::ModelNotFound("m@9".into()).into(),
            "model_not_found",
        ),
        (DeployError::Invalid("x".into()).into(), "invalid_input"),
        (
            DeployError::AgreementTooLow("x".into()).into(),
            "agreement_below_threshold",
        ),
        (IndexError::Ambiguous("x".into()).into(), "invalid_input"),
        (
            IndexError::UnknownIndex("\"x\"".into()).into(),
            "unknown_index",
        ),
        (IndexError::StorageUnavailable.into(), "storage_unavailable"),
        (
            IndexError::Unreachable("pg down".into()).into(),
            "index_unavailable",
        ),
        (IndexError::Unsupported("x".into()).into(), "conflict"),
    ];
    for (err, code) in cases {
        assert_eq!(err.code(), code);
    }
    let err: ApiError = EmbedError::DeadlineExceeded(Duration::from_secs(2)).into();
    assert_eq!(
        err.to_string(),
        "the request did not complete within its 2s deadline"
    );
    assert!(EmbedError::Internal("x".into()).is_server_fault());
    assert!(!EmbedError::InvalidInput("x".into()).is_server_fault());
}

#[test]
fn load_failures_name_files_not_server_paths() {
    let err: ApiError = DeployError::LoadFailed(
        "loading \"/srv/models/m.toml\": reading /srv/models/m/model.safetensors: No such \
         file (os error 2); see docs/load.md"
            .into(),
    )
    .into();
    assert_eq!(
        err.to_string(),
        "loading \"m.toml\": reading model.safetensors: No such file (os error 2); see \
         docs/load.md"
    );
}

#[test]
fn internal_detail_is_not_sent() {
    assert_eq!(
        ApiError::Internal("secret path".into()).to_string(),
        "internal error"
    );
}
