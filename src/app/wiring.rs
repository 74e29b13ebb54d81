//! Serve flags → the settings each layer takes: the deployment [`Policy`], the per-version
//! [`HandleConfig`] (with the input policy and drift settings), the HTTP [`RequestLimits`], the index [`Tuning`] and [`PgSettings`], and the
//! Batch API's [`JobsConfig`]. Built once; the boot version and every version the admin API loads
//! share the same settings (and the same response cache).

use std::sync::Arc;

use crate::{
    auth::tls::{ServerTls, TlsFiles},
    cli::{
        InputPolicyMode, JobsArgs, ListenArgs, MonitorArgs, OfflineArgs, OpenAiTokenIds,
        ServeConfig,
    },
    deploy::{rollback::CanaryLimits, Policy},
    http::{
        openai::{EmbeddingsLines, OpenAiOptions, TokenIds},
        state::RequestLimits,
    },
    index::{postgres::PgSettings, Tuning},
    jobs::{
        webhook::{Secret, WebhookConfig},
        Endpoints, JobsConfig,
    },
    serving::{
        cache::EmbeddingCache,
        drift::{DriftConfig, Profile},
        policy::{InputPolicy, PolicyMode},
        HandleConfig,
    },
};

pub fn policy(config: &ServeConfig) -> Policy {
    Policy {
        canary: CanaryLimits {
            max_error_ratio: config.canary_max_error_ratio,
            max_p99: config.canary_max_p99,
            min_requests: config.canary_min_requests,
            window: config.canary_window,
        },
        shadow_queue: config.shadow_queue,
        shadow_window: config.shadow_window,
        shadow_min_samples: config.shadow_min_samples,
        promote_min_agreement: config.promote_min_agreement,
        request_timeout: config.request_timeout,
    }
}

/// Queue, batching, tokenizer threads, response cache, input policy, drift monitoring (reading
/// `--drift-reference`) and fault injection of `serve`.
pub fn handle_config(config: &ServeConfig) -> anyhow::Result<HandleConfig> {
    Ok(HandleConfig {
        background_budget: config.jobs.batch_background_budget,
        debug_delay: config.debug_batch_delay,
        debug_panic_on: config.debug_panic_on.clone(),
        cache: EmbeddingCache::new(config.cache_capacity),
        max_request_tokens: config.max_client_tokens,
        input_policy: input_policy(&config.monitor),
        drift: drift(&config.monitor)?,
        ..HandleConfig::new(
            config.max_queue_requests,
            config.max_batch_tokens,
            config.max_batch_requests,
            config.tokenizer_workers,
        )
    })
}

fn input_policy(monitor: &MonitorArgs) -> InputPolicy {
    InputPolicy {
        mode: match monitor.input_policy {
            InputPolicyMode::Off => PolicyMode::Off,
            InputPolicyMode::Warn => PolicyMode::Warn,
            InputPolicyMode::Enforce => PolicyMode::Enforce,
        },
        max_chars: monitor.input_max_chars,
        max_unknown_ratio: monitor.input_max_unknown_ratio,
        max_replacement_ratio: monitor.input_max_replacement_ratio,
    }
}

fn drift(monitor: &MonitorArgs) -> anyhow::Result<DriftConfig> {
    let reference = match &monitor.drift_reference {
        Some(path) if monitor.drift_window > 0 => Some(Profile::read(path)?),
        _ => None,
    };
    Ok(DriftConfig {
        window: monitor.drift_window,
        reference,
    })
}

/// `index build`'s and `embed`'s: a deep queue (several chunks in flight), no cache, no faults.
pub fn offline_handle_config(config: &OfflineArgs) -> HandleConfig {
    HandleConfig::new(1024, config.max_batch_tokens, config.max_batch_requests, 2)
}

/// The Batch API's limits, workers and webhooks (reading `--webhook-secret-file`).
pub fn jobs_config(jobs: &JobsArgs) -> anyhow::Result<JobsConfig> {
    let webhooks = match &jobs.webhook_secret_file {
        Some(path) if !jobs.webhook_urls.is_empty() => Some(WebhookConfig {
            urls: jobs.webhook_urls.clone(),
            secret: Secret::load(path)?,
            timeout: jobs.webhook_timeout,
            max_attempts: jobs.webhook_max_attempts,
            concurrency: jobs.webhook_concurrency,
        }),
        _ => None,
    };
    Ok(JobsConfig {
        max_file_bytes: jobs.batch_max_file_bytes,
        max_requests: jobs.batch_max_requests,
        chunk_requests: jobs.batch_chunk_requests,
        workers: jobs.batch_workers,
        claim_timeout: jobs.jobs_claim_timeout,
        webhooks,
    })
}

/// The URLs a batch may name, each run by the dialect that serves it synchronously.
pub fn batch_endpoints(config: &ServeConfig) -> Endpoints {
    batch_endpoints_for(OpenAiOptions::from_limits(&request_limits(config)))
}

/// [`batch_endpoints`] whose `/v1/embeddings` lines follow `options`.
pub fn batch_endpoints_for(options: OpenAiOptions) -> Endpoints {
    Endpoints::default().with(Arc::new(EmbeddingsLines { options }))
}

pub fn request_limits(config: &ServeConfig) -> RequestLimits {
    RequestLimits {
        max_client_batch: config.max_client_batch,
        max_client_tokens: config.max_client_tokens,
        max_body_bytes: config.max_body_bytes,
        max_response_bytes: config.max_response_bytes,
        auto_truncate: config.auto_truncate,
        openai_token_ids: token_ids(config.openai_token_ids),
        request_timeout: config.request_timeout,
    }
}

/// `--openai-token-ids` as the OpenAI dialect takes it.
pub fn token_ids(flag: OpenAiTokenIds) -> TokenIds {
    match flag {
        OpenAiTokenIds::Tiktoken => TokenIds::Tiktoken,
        OpenAiTokenIds::Model => TokenIds::Model,
        OpenAiTokenIds::Reject => TokenIds::Reject,
    }
}

/// Compaction of directory indexes.
pub fn index_tuning(config: &ServeConfig) -> Tuning {
    Tuning {
        compact_after: config.index_compact_after,
        debug_compact_delay: config.debug_compact_delay,
    }
}

/// The connection pool of each PostgreSQL index.
pub fn pg_settings(config: &ServeConfig) -> PgSettings {
    PgSettings {
        pool_size: config.index_pool_size,
        timeout: config.index_timeout,
    }
}

/// `--tls-cert`, `--tls-key`, `--tls-client-ca`: the TLS every listener serves with, if any.
pub fn tls(args: &ListenArgs) -> anyhow::Result<Option<Arc<ServerTls>>> {
    let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
        return Ok(None);
    };
    let tls = ServerTls::load(TlsFiles {
        cert: cert.clone(),
        key: key.clone(),
        client_ca: args.tls_client_ca.clone(),
    })?;
    tracing::info!(cert = %cert.display(), mutual = tls.mutual(), "listeners serve TLS");
    Ok(Some(Arc::new(tls)))
}
