//! Canary health: error ratio and p99 latency of the canary's requests over a sliding window.
//!
//! Every request routed to a canary reports its outcome here. Once the window holds
//! `--canary-min-requests`, a ratio of server-side failures above `--canary-max-error-ratio` or
//! a p99 above `--canary-max-p99` is a [`Breach`]; the deployment then returns the canary's weight
//! to 0 and writes an `auto_rollback` event. Client mistakes (4xx) never count against a canary.

use std::{
    collections::VecDeque,
    sync::Mutex,
    time::{Duration, Instant},
};

use serde::Serialize;

/// Samples kept at most, whatever the window's duration.
const MAX_SAMPLES: usize = 2048;

#[derive(Debug, Clone)]
pub struct CanaryLimits {
    pub max_error_ratio: f64,
    pub max_p99: Duration,
    pub min_requests: usize,
    pub window: Duration,
}

/// Why a canary was rolled back.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Breach {
    ErrorRatio { ratio: f64, limit: f64 },
    P99 { p99_ms: f64, limit_ms: f64 },
}

impl Breach {
    pub fn label(&self) -> &'static str {
        match self {
            Self::ErrorRatio { .. } => "error_ratio",
            Self::P99 { .. } => "p99_latency",
        }
    }
}

/// The canary's recent requests, as reported in the admin status.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct CanaryHealth {
    pub requests: usize,
    pub errors: usize,
    pub error_ratio: f64,
    pub p99_ms: f64,
}

#[derive(Default)]
struct Window {
    version: String,
    samples: VecDeque<(Instant, bool, Duration)>,
}

/// Sliding window of one canary version's outcomes.
#[derive(Default)]
pub struct CanaryMonitor {
    window: Mutex<Window>,
}

impl CanaryMonitor {
    /// Records one canary request; returns a breach when the limits are exceeded.
    pub fn record(
        &self,
        version: &str,
        ok: bool,
        latency: Duration,
        limits: &CanaryLimits,
    ) -> Option<Breach> {
        let now = Instant::now();
        let mut w = self.window.lock().expect("canary window");
        if w.version != version {
            w.version = version.to_string();
            w.samples.clear();
        }
        w.samples.push_back((now, ok, latency));
        while w.samples.len() > MAX_SAMPLES
            || w.samples
                .front()
                .is_some_and(|(at, _, _)| now.duration_since(*at) > limits.window)
        {
            w.samples.pop_front();
        }
        let health = summarize(&w.samples);
        if health.requests < limits.min_requests {
            return None;
        }
        if health.error_ratio > limits.max_error_ratio {
            return Some(Breach::ErrorRatio {
                ratio: health.error_ratio,
                limit: limits.max_error_ratio,
            });
        }
        let limit_ms = limits.max_p99.as_secs_f64() * 1000.0;
        (health.p99_ms > limit_ms).then_some(Breach::P99 {
            p99_ms: health.p99_ms,
            limit_ms,
        })
    }

    /// Forgets the window (after a rollback, or when a new canary starts).
    pub fn reset(&self) {
        let mut w = self.window.lock().expect("canary window");
        w.samples.clear();
        w.version.clear();
    }

    pub fn health(&self, version: &str) -> CanaryHealth {
        let w = self.window.lock().expect("canary window");
        if w.version != version {
            return CanaryHealth::default();
        }
        summarize(&w.samples)
    }
}

fn summarize(samples: &VecDeque<(Instant, bool, Duration)>) -> CanaryHealth {
    let requests = samples.len();
    let errors = samples.iter().filter(|(_, ok, _)| !ok).count();
    let mut latencies: Vec<Duration> = samples.iter().map(|(_, _, l)| *l).collect();
    latencies.sort_unstable();
    let p99 = match latencies.len() {
        0 => Duration::ZERO,
        n => latencies[((n as f64 * 0.99).ceil() as usize).clamp(1, n) - 1],
    };
    CanaryHealth {
        requests,
        errors,
        error_ratio: if requests == 0 {
            0.0
        } else {
            errors as f64 / requests as f64
        },
        p99_ms: p99.as_secs_f64() * 1000.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> CanaryLimits {
        CanaryLimits {
            max_error_ratio: 0.1,
            max_p99: Duration::from_millis(100),
            min_requests: 10,
            window: Duration::from_secs(60),
        }
    }

    #[test]
    fn errors_breach_only_after_min_requests() {
        let m = CanaryMonitor::default();
        let ms = Duration::from_millis(1);
        for _ in 0..9 {
            assert_eq!(m.record("v2", false, ms, &limits()), None);
        }
        let breach = m.record("v2", false, ms, &limits()).unwrap();
        assert_eq!(breach.label(), "error_ratio");
    }

    #[test]
    fn healthy_canary_never_breaches_and_slow_one_does() {
        let m = CanaryMonitor::default();
        for _ in 0..100 {
            assert_eq!(
                m.record("v2", true, Duration::from_millis(5), &limits()),
                None
            );
        }
        assert_eq!(m.health("v2").requests, 100);
        let mut breach = None;
        for _ in 0..5 {
            breach = breach.or(m.record("v2", true, Duration::from_millis(500), &limits()));
        }
        assert_eq!(breach.unwrap().label(), "p99_latency");
    }

    #[test]
    fn a_new_version_starts_a_new_window() {
        let m = CanaryMonitor::default();
        for _ in 0..9 {
            m.record("v2", false, Duration::ZERO, &limits());
        }
        assert_eq!(m.record("v3", false, Duration::ZERO, &limits()), None);
        assert_eq!(m.health("v3").requests, 1);
    }
}
