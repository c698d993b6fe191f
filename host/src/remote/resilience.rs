//! Keeping a caller healthy when a callee job is not: a circuit breaker per
//! address of a callee and a retry budget per callee.
//!
//! - [`CircuitBreaker`]: after [`FAILURES_TO_OPEN`] consecutive failures to
//!   reach an address of a callee (transport errors, missed deadlines,
//!   503s) — or at once, with [`CircuitBreaker::eject`], when a connection
//!   to it is refused and the callee has other addresses — the address is
//!   ejected: calls go to the callee's other addresses, or fail at once
//!   when none is left, instead of each waiting for its deadline; then one
//!   probe call is let through, and its outcome re-admits the address or
//!   ejects it again for twice as long (up to [`MAX_OPEN`]). Every change
//!   of state is logged.
//! - [`RetryBudget`]: retries of idempotent calls are allowed only while
//!   they stay a small share of all calls (a token bucket: each call earns a
//!   tenth of a retry, up to ten saved), so a struggling callee is not hit
//!   with three times its load; each retry waits a jittered backoff.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Consecutive failures that open the circuit.
pub const FAILURES_TO_OPEN: u32 = 5;
/// How long the circuit first stays open.
pub const FIRST_OPEN: Duration = Duration::from_millis(500);
/// The longest the circuit stays open before a probe.
pub const MAX_OPEN: Duration = Duration::from_secs(15);

/// Whether a call may go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Yes (the circuit is closed).
    Call,
    /// Yes, as the one probe of a circuit that was open.
    Probe,
    /// No: the circuit is open for this much longer.
    Refused(Duration),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant, period: Duration },
    HalfOpen { period: Duration },
}

/// The circuit breaker of one address of a callee.
#[derive(Debug)]
pub struct CircuitBreaker {
    callee: String,
    address: String,
    state: Mutex<State>,
}

impl CircuitBreaker {
    /// A closed circuit for calls to `callee` at `address` (both named in
    /// logs).
    pub fn new(callee: &str, address: &str) -> CircuitBreaker {
        CircuitBreaker {
            callee: callee.to_string(),
            address: address.to_string(),
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    /// Whether a call may go out at `now`.
    pub fn admit(&self, now: Instant) -> Admission {
        let Ok(mut state) = self.state.lock() else {
            return Admission::Call;
        };
        match *state {
            State::Closed { .. } => Admission::Call,
            State::HalfOpen { .. } => Admission::Refused(Duration::ZERO),
            State::Open { until, period } if now >= until => {
                *state = State::HalfOpen { period };
                tracing::info!(callee = %self.callee, address = %self.address, "circuit half-open: probing the ejected address with one call");
                Admission::Probe
            }
            State::Open { until, .. } => Admission::Refused(until - now),
        }
    }

    /// Records a call that reached the callee (whatever it answered).
    pub fn succeeded(&self) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if !matches!(*state, State::Closed { failures: 0 }) {
            if !matches!(*state, State::Closed { .. }) {
                tracing::info!(callee = %self.callee, address = %self.address, "circuit closed: the address answers again and is re-admitted");
            }
            *state = State::Closed { failures: 0 };
        }
    }

    /// Records a call that could not reach the address, at `now`.
    pub fn failed(&self, now: Instant) {
        self.record_failure(now, FAILURES_TO_OPEN);
    }

    /// Records a call that could not reach the address and ejects it at
    /// once (a refused connection when the callee has other addresses).
    pub fn eject(&self, now: Instant) {
        self.record_failure(now, 1);
    }

    fn record_failure(&self, now: Instant, failures_to_open: u32) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let open_for = match *state {
            State::Closed { failures } if failures + 1 >= failures_to_open => FIRST_OPEN,
            State::Closed { failures } => {
                *state = State::Closed {
                    failures: failures + 1,
                };
                return;
            }
            State::HalfOpen { period } => (period * 2).min(MAX_OPEN),
            // A call admitted before the circuit opened.
            State::Open { .. } => return,
        };
        tracing::warn!(callee = %self.callee, address = %self.address, open_ms = open_for.as_millis() as u64, "circuit open: the address is ejected; calls go to the callee's other addresses, or fail at once when none is left, until a probe succeeds");
        *state = State::Open {
            until: now + open_for,
            period: open_for,
        };
    }

    /// Whether the circuit is closed (the address is admitted).
    pub fn is_closed(&self) -> bool {
        self.state
            .lock()
            .is_ok_and(|s| matches!(*s, State::Closed { .. }))
    }
}

/// Tenths of a retry: each call earns one, a retry costs ten, at most a
/// hundred are saved.
const RETRY_COST: u32 = 10;
const MAX_TOKENS: u32 = 100;

/// The retry budget of one callee.
#[derive(Debug)]
pub struct RetryBudget {
    tokens: Mutex<u32>,
}

impl Default for RetryBudget {
    fn default() -> Self {
        RetryBudget {
            tokens: Mutex::new(MAX_TOKENS),
        }
    }
}

impl RetryBudget {
    /// Records a first attempt (earns a tenth of a retry).
    pub fn record_call(&self) {
        if let Ok(mut tokens) = self.tokens.lock() {
            *tokens = (*tokens + 1).min(MAX_TOKENS);
        }
    }

    /// Takes one retry, if the budget has one.
    pub fn try_retry(&self) -> bool {
        let Ok(mut tokens) = self.tokens.lock() else {
            return false;
        };
        if *tokens >= RETRY_COST {
            *tokens -= RETRY_COST;
            true
        } else {
            false
        }
    }
}

/// The pause before retry `attempt` (1 for the first retry): exponential
/// from 20 ms, with full jitter, so callers that failed together do not
/// retry together.
pub fn backoff(attempt: u32) -> Duration {
    let ceiling_ms = 20u64 << attempt.min(6);
    Duration::from_millis(fastrand::u64(ceiling_ms / 2..=ceiling_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_circuit_opens_probes_and_closes() {
        let breaker = CircuitBreaker::new("greeter", "http://127.0.0.1:1");
        let t0 = Instant::now();
        for _ in 0..FAILURES_TO_OPEN - 1 {
            breaker.failed(t0);
            assert_eq!(breaker.admit(t0), Admission::Call);
        }
        breaker.failed(t0);
        assert_eq!(breaker.admit(t0), Admission::Refused(FIRST_OPEN));
        // After the open period, exactly one probe.
        let t1 = t0 + FIRST_OPEN;
        assert_eq!(breaker.admit(t1), Admission::Probe);
        assert!(matches!(breaker.admit(t1), Admission::Refused(_)));
        // A failed probe opens it for twice as long.
        breaker.failed(t1);
        assert_eq!(breaker.admit(t1), Admission::Refused(FIRST_OPEN * 2));
        let t2 = t1 + FIRST_OPEN * 2;
        assert_eq!(breaker.admit(t2), Admission::Probe);
        breaker.succeeded();
        assert!(breaker.is_closed());
        assert_eq!(breaker.admit(t2), Admission::Call);
    }

    #[test]
    fn an_ejected_address_is_probed_after_a_growing_pause() {
        let breaker = CircuitBreaker::new("greeter", "http://127.0.0.1:1");
        let t0 = Instant::now();
        breaker.eject(t0);
        assert_eq!(breaker.admit(t0), Admission::Refused(FIRST_OPEN));
        let t1 = t0 + FIRST_OPEN;
        assert_eq!(breaker.admit(t1), Admission::Probe);
        breaker.eject(t1);
        assert_eq!(breaker.admit(t1), Admission::Refused(FIRST_OPEN * 2));
        let t2 = t1 + FIRST_OPEN * 2;
        assert_eq!(breaker.admit(t2), Admission::Probe);
        breaker.succeeded();
        assert_eq!(breaker.admit(t2), Admission::Call);
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let breaker = CircuitBreaker::new("greeter", "http://127.0.0.1:1");
        let t0 = Instant::now();
        for _ in 0..FAILURES_TO_OPEN - 1 {
            breaker.failed(t0);
        }
        breaker.succeeded();
        breaker.failed(t0);
        assert_eq!(breaker.admit(t0), Admission::Call);
    }

    #[test]
    fn retries_stay_a_small_share_of_calls() {
        let budget = RetryBudget::default();
        let mut retries = 0;
        while budget.try_retry() {
            retries += 1;
        }
        assert_eq!(retries, 10);
        for _ in 0..100 {
            budget.record_call();
        }
        let mut more = 0;
        while budget.try_retry() {
            more += 1;
        }
        assert_eq!(more, 10, "100 calls earn 10 retries");
    }

    #[test]
    fn backoff_is_jittered_and_bounded() {
        for attempt in 1..10 {
            let pause = backoff(attempt);
            let ceiling = 20u64 << attempt.min(6);
            assert!(pause.as_millis() as u64 >= ceiling / 2 && pause.as_millis() as u64 <= ceiling);
        }
    }
}
