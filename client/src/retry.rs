//! When and how long to wait before trying again.
//!
//! Retried: 429 and 503 (the server asked to come back; its `Retry-After` is honoured, capped
//! by [`RetryPolicy::max_backoff`]), connection failures and connections reset mid-exchange
//! (embedding is idempotent, so a lost answer can be asked for again), and, when
//! [`RetryPolicy::retry_timeouts`] is set, attempts that timed out. Never retried: every other
//! status (400, 401, 413, 422 are the caller's to fix; 500 and 504 would likely repeat), an
//! undecodable answer, an open breaker.
//!
//! Without `Retry-After` the wait is "full jitter" exponential backoff: uniform in
//! `[0, min(max_backoff, base_backoff × 2^(attempt-1))]`, which spreads retrying clients out.

use std::time::Duration;

use rand::Rng;

use crate::{retryable_status, Error};

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 disables retries).
    pub max_attempts: u32,
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// Retry attempts that hit the per-attempt timeout (default false: a slow server is
    /// usually a loaded one, and retrying adds load).
    pub retry_timeouts: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            retry_timeouts: false,
        }
    }
}

impl RetryPolicy {
    /// No retries.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.max_attempts == 0 {
            return Err("max_attempts must be at least 1".into());
        }
        if self.base_backoff > self.max_backoff {
            return Err("base_backoff must not exceed max_backoff".into());
        }
        Ok(())
    }

    /// Whether `err` may be retried at all.
    pub fn is_retryable(&self, err: &Error) -> bool {
        match err {
            Error::Api { status, .. } => retryable_status(*status),
            Error::Connect(_) | Error::Transport(_) => true,
            Error::Timeout => self.retry_timeouts,
            Error::DeadlineExceeded { .. }
            | Error::CircuitOpen
            | Error::Decode(_)
            | Error::Config(_) => false,
        }
    }

    /// The wait before attempt `attempt + 1`, after attempt `attempt` (1-based) failed with
    /// `err`; `None` when it must not be retried.
    pub fn delay(&self, attempt: u32, err: &Error) -> Option<Duration> {
        if attempt >= self.max_attempts || !self.is_retryable(err) {
            return None;
        }
        if let Error::Api {
            retry_after: Some(after),
            ..
        } = err
        {
            return Some((*after).min(self.max_backoff));
        }
        Some(self.backoff(attempt, &mut rand::rng()))
    }

    /// Full-jitter exponential backoff after the `attempt`-th failure.
    pub fn backoff(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let cap = self.ceiling(attempt);
        Duration::from_nanos(rng.random_range(0..=cap.as_nanos() as u64))
    }

    /// The upper bound of the jittered wait after the `attempt`-th failure.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.base_backoff
            .checked_mul(factor)
            .unwrap_or(self.max_backoff)
            .min(self.max_backoff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, retry_after: Option<u64>) -> Error {
        Error::Api {
            status,
            code: None,
            message: String::new(),
            retry_after: retry_after.map(Duration::from_secs),
        }
    }

    #[test]
    fn retries_only_what_is_safe_and_useful() {
        let policy = RetryPolicy::default();
        for status in [429, 503] {
            assert!(policy.is_retryable(&api(status, None)), "{status}");
        }
        for status in [400, 401, 403, 404, 413, 415, 422, 500, 504] {
            assert!(!policy.is_retryable(&api(status, None)), "{status}");
        }
        assert!(policy.is_retryable(&Error::Connect("refused".into())));
        assert!(policy.is_retryable(&Error::Transport("reset".into())));
        assert!(!policy.is_retryable(&Error::Timeout));
        assert!(!policy.is_retryable(&Error::CircuitOpen));
        assert!(!policy.is_retryable(&Error::Decode("x".into())));
        let patient = RetryPolicy {
            retry_timeouts: true,
            ..policy
        };
        assert!(patient.is_retryable(&Error::Timeout));
    }

    #[test]
    fn stops_after_max_attempts() {
        let policy = RetryPolicy {
            max_attempts: 3,
            ..RetryPolicy::default()
        };
        let err = api(503, None);
        assert!(policy.delay(1, &err).is_some());
        assert!(policy.delay(2, &err).is_some());
        assert!(policy.delay(3, &err).is_none());
        assert!(RetryPolicy::none().delay(1, &err).is_none());
    }

    #[test]
    fn retry_after_is_honoured_and_capped() {
        let policy = RetryPolicy {
            max_backoff: Duration::from_secs(3),
            ..RetryPolicy::default()
        };
        assert_eq!(
            policy.delay(1, &api(503, Some(2))),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            policy.delay(1, &api(429, Some(60))),
            Some(Duration::from_secs(3))
        );
    }

    #[test]
    fn backoff_grows_exponentially_within_the_cap_with_full_jitter() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            retry_timeouts: false,
        };
        assert_eq!(policy.ceiling(1), Duration::from_millis(100));
        assert_eq!(policy.ceiling(2), Duration::from_millis(200));
        assert_eq!(policy.ceiling(4), Duration::from_millis(800));
        assert_eq!(policy.ceiling(5), Duration::from_secs(1));
        assert_eq!(policy.ceiling(200), Duration::from_secs(1));
        let mut rng = rand::rng();
        let samples: Vec<Duration> = (0..200).map(|_| policy.backoff(3, &mut rng)).collect();
        assert!(samples.iter().all(|d| *d <= Duration::from_millis(400)));
        // Full jitter: the waits spread over the range rather than clustering at the cap.
        assert!(samples.iter().any(|d| *d < Duration::from_millis(200)));
        assert!(samples.iter().any(|d| *d > Duration::from_millis(200)));
    }
}
