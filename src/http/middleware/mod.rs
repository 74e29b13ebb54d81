//! Middleware the routes share: API keys ([`auth`]), per-key rate limits ([`rate_limit`]),
//! request metrics and panic recovery ([`track`]), request ids and request spans ([`trace`]).

pub mod auth;
pub mod rate_limit;
pub mod trace;
pub mod track;
