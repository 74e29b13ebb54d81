//! Middleware every API route shares: API keys and per-key rate limits.

pub mod auth {
    pub use crate::auth::{require_api_key, Caller, RequireKey};
}
pub mod rate_limit;
