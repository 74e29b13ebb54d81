//! A circuit breaker: stop calling a server that keeps failing, and probe it back in.
//!
//! - **Closed**: calls go through. Each outcome is recorded; the breaker opens after
//!   [`BreakerConfig::consecutive_failures`] failures in a row, or when the share of failures
//!   among the last [`BreakerConfig::window`] outcomes reaches
//!   [`BreakerConfig::failure_ratio`] (judged once at least [`BreakerConfig::min_calls`] are in
//!   the window).
//! - **Open**: calls are refused at once (the client answers from its fallback or with
//!   `Error::CircuitOpen`) for [`BreakerConfig::open_for`].
//! - **Half-open**: after the cool-down, up to [`BreakerConfig::half_open_probes`] calls are let
//!   through at a time; the first success closes the breaker, a failure opens it again.
//!
//! A failure is what says the server is unhealthy: 5xx, timeouts, connection failures. 4xx
//! answers (429 included) prove the server is up and count as successes.
//!
//! Time comes from a [`Clock`], so tests drive it with [`ManualClock`].

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::metric_names::BREAKER_STATE;

/// A source of the current time.
pub trait Clock: Send + Sync {
    fn now(&self) -> Instant;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<Instant>,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self {
            now: Mutex::new(Instant::now()),
        }
    }
}

impl ManualClock {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn advance(&self, by: Duration) {
        *self.now.lock().unwrap() += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        *self.now.lock().unwrap()
    }
}

#[derive(Debug, Clone)]
pub struct BreakerConfig {
    /// Failures in a row that open the breaker (0: this rule is off).
    pub consecutive_failures: u32,
    /// Share of failures in the window that opens the breaker (`None`: this rule is off).
    pub failure_ratio: Option<f64>,
    /// Outcomes the ratio is computed over (the most recent ones).
    pub window: usize,
    /// Outcomes the window must hold before the ratio is judged.
    pub min_calls: usize,
    /// How long the breaker stays open before it lets probes through.
    pub open_for: Duration,
    /// Calls let through at a time while half-open.
    pub half_open_probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            failure_ratio: Some(0.5),
            window: 20,
            min_calls: 10,
            open_for: Duration::from_secs(10),
            half_open_probes: 1,
        }
    }
}

impl BreakerConfig {
    /// A breaker that never opens.
    pub fn disabled() -> Self {
        Self {
            consecutive_failures: 0,
            failure_ratio: None,
            ..Self::default()
        }
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if let Some(ratio) = self.failure_ratio {
            if !(ratio > 0.0 && ratio <= 1.0) {
                return Err("failure_ratio must be in (0, 1]".into());
            }
            if self.window == 0 || self.min_calls == 0 || self.min_calls > self.window {
                return Err("need 0 < min_calls <= window for failure_ratio".into());
            }
        }
        if self.half_open_probes == 0 {
            return Err("half_open_probes must be at least 1".into());
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    /// The value of the `inferd_client_breaker_state` gauge.
    pub fn gauge(self) -> f64 {
        match self {
            Self::Closed => 0.0,
            Self::Open => 1.0,
            Self::HalfOpen => 2.0,
        }
    }
}

#[derive(Debug)]
enum State {
    Closed {
        consecutive: u32,
        /// Recent outcomes, `true` for a failure.
        window: VecDeque<bool>,
    },
    Open {
        until: Instant,
    },
    HalfOpen {
        in_flight: u32,
    },
}

impl State {
    fn closed() -> Self {
        Self::Closed {
            consecutive: 0,
            window: VecDeque::new(),
        }
    }
}

#[derive(Debug)]
struct Inner {
    state: State,
    /// Bumped on every transition, so outcomes of calls admitted under an earlier state are
    /// not counted against the current one.
    epoch: u64,
}

pub struct CircuitBreaker {
    name: String,
    config: BreakerConfig,
    clock: Arc<dyn Clock>,
    inner: Mutex<Inner>,
}

impl CircuitBreaker {
    /// A closed breaker; `name` labels its metrics (`endpoint`).
    pub fn new(name: impl Into<String>, config: BreakerConfig, clock: Arc<dyn Clock>) -> Self {
        let breaker = Self {
            name: name.into(),
            config,
            clock,
            inner: Mutex::new(Inner {
                state: State::closed(),
                epoch: 0,
            }),
        };
        breaker.publish(BreakerState::Closed);
        breaker
    }

    /// The state a call made now would meet.
    pub fn state(&self) -> BreakerState {
        match self.inner.lock().unwrap().state {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { until } if self.clock.now() < until => BreakerState::Open,
            State::Open { .. } | State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Asks to make a call: `None` while open (or while half-open with every probe slot taken).
    pub fn try_acquire(&self) -> Option<Permit<'_>> {
        let mut inner = self.inner.lock().unwrap();
        let probe = match &mut inner.state {
            State::Closed { .. } => false,
            State::Open { until } => {
                if self.clock.now() < *until {
                    return None;
                }
                self.transition(&mut inner, State::HalfOpen { in_flight: 1 });
                true
            }
            State::HalfOpen { in_flight } => {
                if *in_flight >= self.config.half_open_probes {
                    return None;
                }
                *in_flight += 1;
                true
            }
        };
        Some(Permit {
            breaker: self,
            epoch: inner.epoch,
            probe,
            done: false,
        })
    }

    fn record(&self, epoch: u64, failed: bool) {
        let mut inner = self.inner.lock().unwrap();
        if inner.epoch != epoch {
            return;
        }
        let config = &self.config;
        let trip = match &mut inner.state {
            State::Closed {
                consecutive,
                window,
            } => {
                *consecutive = if failed { *consecutive + 1 } else { 0 };
                if config.failure_ratio.is_some() {
                    window.push_back(failed);
                    while window.len() > config.window {
                        window.pop_front();
                    }
                }
                let by_run =
                    config.consecutive_failures > 0 && *consecutive >= config.consecutive_failures;
                let by_ratio = config.failure_ratio.is_some_and(|ratio| {
                    let failures = window.iter().filter(|f| **f).count();
                    window.len() >= config.min_calls
                        && failures as f64 >= ratio * window.len() as f64
                });
                failed && (by_run || by_ratio)
            }
            State::HalfOpen { .. } => {
                if !failed {
                    self.transition(&mut inner, State::closed());
                    return;
                }
                true
            }
            State::Open { .. } => false,
        };
        if trip {
            let until = self.clock.now() + config.open_for;
            self.transition(&mut inner, State::Open { until });
        }
    }

    fn release(&self, epoch: u64) {
        let mut inner = self.inner.lock().unwrap();
        if inner.epoch != epoch {
            return;
        }
        if let State::HalfOpen { in_flight } = &mut inner.state {
            *in_flight = in_flight.saturating_sub(1);
        }
    }

    fn transition(&self, inner: &mut Inner, to: State) {
        inner.epoch += 1;
        let public = match to {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        };
        inner.state = to;
        self.publish(public);
    }

    fn publish(&self, state: BreakerState) {
        metrics::gauge!(BREAKER_STATE, "endpoint" => self.name.clone()).set(state.gauge());
    }
}

/// Leave to make one call; report how it went. Dropped without a report (the call was
/// cancelled), it frees its half-open probe slot without judging the server.
pub struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    epoch: u64,
    probe: bool,
    done: bool,
}

impl Permit<'_> {
    pub fn success(mut self) {
        self.done = true;
        self.breaker.record(self.epoch, false);
    }

    pub fn failure(mut self) {
        self.done = true;
        self.breaker.record(self.epoch, true);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.done && self.probe {
            self.breaker.release(self.epoch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(config: BreakerConfig) -> (CircuitBreaker, Arc<ManualClock>) {
        let clock = ManualClock::new();
        (CircuitBreaker::new("test", config, clock.clone()), clock)
    }

    fn consecutive(n: u32) -> BreakerConfig {
        BreakerConfig {
            consecutive_failures: n,
            failure_ratio: None,
            open_for: Duration::from_secs(10),
            ..BreakerConfig::default()
        }
    }

    fn fail(b: &CircuitBreaker) {
        b.try_acquire().expect("permitted").failure();
    }

    fn succeed(b: &CircuitBreaker) {
        b.try_acquire().expect("permitted").success();
    }

    #[test]
    fn opens_after_consecutive_failures_and_a_success_resets_the_run() {
        let (b, _) = breaker(consecutive(3));
        fail(&b);
        fail(&b);
        succeed(&b);
        fail(&b);
        fail(&b);
        assert_eq!(b.state(), BreakerState::Closed);
        fail(&b);
        assert_eq!(b.state(), BreakerState::Open);
        assert!(b.try_acquire().is_none());
    }

    #[test]
    fn opens_on_failure_ratio_over_the_window() {
        let (b, _) = breaker(BreakerConfig {
            consecutive_failures: 0,
            failure_ratio: Some(0.5),
            window: 4,
            min_calls: 4,
            ..BreakerConfig::default()
        });
        // Alternating: never two in a row, but half of the window fails.
        fail(&b);
        succeed(&b);
        fail(&b);
        assert_eq!(b.state(), BreakerState::Closed, "window not full yet");
        succeed(&b);
        assert_eq!(b.state(), BreakerState::Closed, "a success never trips");
        fail(&b);
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn half_open_after_cool_down_and_a_probe_success_closes() {
        let (b, clock) = breaker(consecutive(1));
        fail(&b);
        assert!(b.try_acquire().is_none());
        clock.advance(Duration::from_secs(9));
        assert!(b.try_acquire().is_none(), "still cooling down");
        clock.advance(Duration::from_secs(1));
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let probe = b.try_acquire().expect("one probe");
        assert!(b.try_acquire().is_none(), "only one probe at a time");
        probe.success();
        assert_eq!(b.state(), BreakerState::Closed);
        succeed(&b);
        succeed(&b);
    }

    #[test]
    fn a_failed_probe_reopens_for_another_cool_down() {
        let (b, clock) = breaker(consecutive(1));
        fail(&b);
        clock.advance(Duration::from_secs(10));
        fail(&b);
        assert_eq!(b.state(), BreakerState::Open);
        clock.advance(Duration::from_secs(5));
        assert!(b.try_acquire().is_none());
        clock.advance(Duration::from_secs(5));
        assert!(b.try_acquire().is_some());
    }

    #[test]
    fn several_probes_and_cancelled_probes_free_their_slot() {
        let (b, clock) = breaker(BreakerConfig {
            half_open_probes: 2,
            ..consecutive(1)
        });
        fail(&b);
        clock.advance(Duration::from_secs(10));
        let first = b.try_acquire().expect("probe 1");
        let second = b.try_acquire().expect("probe 2");
        assert!(b.try_acquire().is_none());
        drop(first);
        let third = b.try_acquire().expect("slot freed by the cancelled probe");
        second.success();
        assert_eq!(b.state(), BreakerState::Closed);
        // A late outcome from the half-open era does not touch the closed breaker.
        third.failure();
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn stale_outcomes_from_before_opening_are_ignored() {
        let (b, clock) = breaker(consecutive(1));
        let slow = b.try_acquire().unwrap();
        fail(&b);
        clock.advance(Duration::from_secs(10));
        slow.success();
        assert_eq!(
            b.state(),
            BreakerState::HalfOpen,
            "old success does not close"
        );
    }

    #[test]
    fn disabled_never_opens() {
        let (b, _) = breaker(BreakerConfig::disabled());
        for _ in 0..100 {
            fail(&b);
        }
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn config_is_validated() {
        assert!(BreakerConfig::default().validate().is_ok());
        let bad = BreakerConfig {
            failure_ratio: Some(1.5),
            ..BreakerConfig::default()
        };
        assert!(bad.validate().is_err());
        let bad = BreakerConfig {
            half_open_probes: 0,
            ..BreakerConfig::default()
        };
        assert!(bad.validate().is_err());
    }
}
