//! Serve flags → the settings each layer takes: the deployment [`Policy`], the per-version
//! [`HandleConfig`], the HTTP [`RequestLimits`] and the index [`Tuning`] and [`PgSettings`]. Built once; the boot version and every
//! version the admin API loads share the same settings (and the same response cache).

use crate::{
    cli::{IndexBuildConfig, ServeConfig},
    deploy::{rollback::CanaryLimits, Policy},
    http::state::RequestLimits,
    index::{postgres::PgSettings, Tuning},
    serving::{cache::EmbeddingCache, HandleConfig},
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

/// Queue, batching, tokenizer threads, response cache and fault injection of `serve`.
pub fn handle_config(config: &ServeConfig) -> HandleConfig {
    HandleConfig {
        debug_delay: config.debug_batch_delay,
        debug_panic_on: config.debug_panic_on.clone(),
        cache: EmbeddingCache::new(config.cache_capacity),
        ..HandleConfig::new(
            config.max_queue_requests,
            config.max_batch_tokens,
            config.max_batch_requests,
            config.tokenizer_workers,
        )
    }
}

/// `index build`'s: a deep queue (several chunks in flight), no cache, no faults.
pub fn build_handle_config(config: &IndexBuildConfig) -> HandleConfig {
    HandleConfig::new(1024, config.max_batch_tokens, config.max_batch_requests, 2)
}

pub fn request_limits(config: &ServeConfig) -> RequestLimits {
    RequestLimits {
        max_client_batch: config.max_client_batch,
        max_body_bytes: config.max_body_bytes,
        request_timeout: config.request_timeout,
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
