//! Draining on shutdown: every listener, connection and request task of a job
//! is tracked here. [`Drain::begin`] (on SIGTERM) makes the accept loops stop
//! (their sockets close, so new connections are refused) and asks every
//! connection to finish its request in flight and close; [`Drain::finished`]
//! resolves once all of them are done. `run.rs` bounds the wait by the
//! shutdown grace period.

use std::future::Future;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};
use tokio_util::task::TaskTracker;
use tokio_util::task::task_tracker::TrackedFuture;

/// Shared by everything a job serves.
#[derive(Debug, Clone, Default)]
pub struct Drain {
    stop: CancellationToken,
    tracker: TaskTracker,
}

impl Drain {
    /// A drain that has not begun.
    pub fn new() -> Drain {
        Drain::default()
    }

    /// Resolves when draining begins.
    pub fn stopping(&self) -> WaitForCancellationFuture<'_> {
        self.stop.cancelled()
    }

    /// Whether draining has begun.
    pub fn is_stopping(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// `future`, counted as in flight until it completes or is dropped.
    pub fn track<F: Future>(&self, future: F) -> TrackedFuture<F> {
        self.tracker.track_future(future)
    }

    /// Starts draining: accept loops stop, connections close after their
    /// request in flight.
    pub fn begin(&self) {
        self.tracker.close();
        self.stop.cancel();
    }

    /// Tasks in flight.
    pub fn in_flight(&self) -> usize {
        self.tracker.len()
    }

    /// Resolves once draining has begun and nothing is in flight.
    pub async fn finished(&self) {
        self.tracker.wait().await;
    }
}
