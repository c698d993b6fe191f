//! How long this process has been up: `main` marks its start first thing, and
//! `amimono run` reports the time to ready (`ready_ms` on the "job running"
//! log line), which the cold-start benchmark (PF3) reads.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

static STARTED: OnceLock<Instant> = OnceLock::new();

/// Marks the process start (the first call wins).
pub fn mark_start() {
    STARTED.get_or_init(Instant::now);
}

/// Time since [`mark_start`] (or since the first call here, if never marked).
pub fn since_start() -> Duration {
    STARTED.get_or_init(Instant::now).elapsed()
}
