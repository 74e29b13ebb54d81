//! Per-key token-bucket rate limits (`--rate-limit`, `--rate-limit-burst`).
//!
//! Each API key (by its name in `--api-key-file`) has a bucket of `burst` tokens refilled at
//! `rate` tokens per second; a request takes one token, and a request that finds the bucket
//! empty is answered 429 `rate_limited` with `Retry-After` (whole seconds until a token is
//! back). Without API keys the service has no trustworthy caller identity (behind an ingress
//! every client IP is the proxy's), so all callers share one bucket, labelled `anonymous`: the
//! limit then caps the service's total request rate.
//!
//! Buckets exist only for configured keys (plus `anonymous`), so memory is bounded by the key
//! file. The middleware runs after authentication, so unauthenticated requests never take
//! tokens from a real key. Refusals count in `inferd_rate_limited_total{key}`.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    extract::{Request, State},
    middleware::Next,
    response::Response,
};

use super::auth::Caller;
use crate::http::{error::ApiError, metrics, state::AppState};

/// The bucket shared by all callers when the service runs without API keys.
pub const ANONYMOUS: &str = "anonymous";

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<Arc<str>, Bucket>>,
}

impl RateLimiter {
    /// `rate` requests per second with bursts of `burst` (default: the rate, at least 1);
    /// `None` when `rate` is unset or 0 (no limit).
    pub fn new(rate: Option<f64>, burst: Option<u32>) -> Option<Arc<Self>> {
        let rate = rate.filter(|r| *r > 0.0 && r.is_finite())?;
        let burst = burst.map_or(rate.ceil().max(1.0), f64::from);
        Some(Arc::new(Self {
            rate,
            burst,
            buckets: Mutex::new(HashMap::new()),
        }))
    }

    /// Takes a token from `key`'s bucket at `now`, or says how long until one is available.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().expect("rate limiter lock");
        if !buckets.contains_key(key) {
            let full = Bucket {
                tokens: self.burst,
                updated: now,
            };
            buckets.insert(key.into(), full);
        }
        let bucket = buckets.get_mut(key).expect("inserted above");
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let wait = (1.0 - bucket.tokens) / self.rate;
        Err(Duration::from_secs(wait.ceil().max(1.0) as u64))
    }
}

/// Middleware for the API routes, layered inside [`super::auth::require_api_key`].
pub async fn enforce(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if let Some(limiter) = &state.rate_limiter {
        let caller = request
            .extensions()
            .get::<Caller>()
            .and_then(|c| c.0.clone());
        let key = caller.as_deref().unwrap_or(ANONYMOUS);
        if let Err(retry_after) = limiter.check(key, Instant::now()) {
            metrics::rate_limited(key);
            return Err(ApiError::RateLimited { retry_after });
        }
    }
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill_at_the_rate() {
        let limiter = RateLimiter::new(Some(2.0), Some(3)).unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check("a", t0).is_ok());
        }
        assert_eq!(limiter.check("a", t0), Err(Duration::from_secs(1)));
        // Other keys have their own bucket.
        assert!(limiter.check("b", t0).is_ok());
        // 2 tokens/s: after 500 ms one token is back, and only one.
        let t1 = t0 + Duration::from_millis(500);
        assert!(limiter.check("a", t1).is_ok());
        assert!(limiter.check("a", t1).is_err());
        // Refill never exceeds the burst.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(limiter.check("a", t2).is_ok());
        }
        assert!(limiter.check("a", t2).is_err());
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let limiter = RateLimiter::new(Some(0.25), None).unwrap();
        let t0 = Instant::now();
        assert!(
            limiter.check("a", t0).is_ok(),
            "burst defaults to at least 1"
        );
        assert_eq!(limiter.check("a", t0), Err(Duration::from_secs(4)));
    }

    #[test]
    fn zero_or_unset_rate_is_off() {
        assert!(RateLimiter::new(None, Some(5)).is_none());
        assert!(RateLimiter::new(Some(0.0), None).is_none());
    }
}
