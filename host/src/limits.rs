//! Resource limits: what one instance may use (linear memory, CPU time,
//! wall-clock time), how many instances each component may run at once and
//! how long a request may wait for one, and what the job's listeners accept
//! (connections, request body and header sizes, read and write stalls), the
//! job-wide memory budget and the shutdown grace period. Defaults below; the
//! manifest's `[limits]` table changes them for the app,
//! `[components.<label>.limits]` the per-component ones for the graphs a
//! component is the entry of. Documented in `docs/capabilities.md`.

use std::time::Duration;

/// The limits in force for one graph or server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes each linear memory of an instance may grow to.
    pub memory_bytes: usize,
    /// Time an instance may spend running wasm for one request or call
    /// (counted in epoch ticks while it runs, not while it waits).
    pub cpu_time: Duration,
    /// Wall-clock time one HTTP request (until its response body is sent)
    /// or one served remote call may take, waiting included; the guest is
    /// interrupted after it.
    pub request_timeout: Duration,
    /// Instances of the component's graph alive at once; requests beyond wait.
    pub max_instances: usize,
    /// Requests that may wait for one of the component's instances at once;
    /// requests beyond are refused at once (503).
    pub max_queued: usize,
    /// Time a request may wait for an instance before it is refused (503).
    pub queue_timeout: Duration,
    /// Largest request body accepted (HTTP 413 above).
    pub max_body_bytes: u64,
    /// Time a client has to send a whole request body (408 after it).
    pub body_timeout: Duration,
    /// Most request headers accepted (HTTP 431 above).
    pub max_headers: usize,
    /// Time a client has to send a request's headers before the connection is closed.
    pub header_read_timeout: Duration,
    /// Time a write to a client may make no progress (a client that does
    /// not read its response) before the connection is closed.
    pub send_timeout: Duration,
    /// Connections one listener serves at once; more are closed at once.
    pub max_connections: usize,
    /// Bytes the whole job may hold in guest linear memory and buffered
    /// request bodies together (`None`: a share of the machine's memory,
    /// see [`crate::serve::budget`]).
    pub memory_budget_bytes: Option<u64>,
    /// Time in-flight requests get to finish after SIGTERM.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 128 << 20,
            cpu_time: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_instances: 100,
            max_queued: 200,
            queue_timeout: Duration::from_secs(2),
            max_body_bytes: 16 << 20,
            body_timeout: Duration::from_secs(10),
            max_headers: 100,
            header_read_timeout: Duration::from_secs(5),
            send_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            memory_budget_bytes: None,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// Limit overrides as written in a manifest table; `None` keeps the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitOverrides {
    /// `memory_mib`: MiB per linear memory.
    pub memory_mib: Option<u64>,
    /// `cpu_ms`: CPU time per request, in ms.
    pub cpu_ms: Option<u64>,
    /// `request_timeout_ms`: wall-clock time per request or served call.
    pub request_timeout_ms: Option<u64>,
    /// `max_instances`: concurrent instances per component.
    pub max_instances: Option<u64>,
    /// `max_queued`: requests waiting for an instance, per component.
    pub max_queued: Option<u64>,
    /// `queue_timeout_ms`: longest wait for an instance.
    pub queue_timeout_ms: Option<u64>,
    /// `max_body_bytes`: largest request body.
    pub max_body_bytes: Option<u64>,
    /// `body_timeout_ms`: time to receive a request body.
    pub body_timeout_ms: Option<u64>,
    /// `max_headers`: most request headers (app level only).
    pub max_headers: Option<u64>,
    /// `header_read_timeout_ms` (app level only).
    pub header_read_timeout_ms: Option<u64>,
    /// `send_timeout_ms`: longest write stall (app level only).
    pub send_timeout_ms: Option<u64>,
    /// `max_connections`: per listener (app level only).
    pub max_connections: Option<u64>,
    /// `memory_budget_mib`: the job's memory budget (app level only).
    pub memory_budget_mib: Option<u64>,
    /// `shutdown_grace_ms`: drain time after SIGTERM (app level only).
    pub shutdown_grace_ms: Option<u64>,
}

impl LimitOverrides {
    /// `base` with these overrides applied.
    pub fn apply(&self, base: Limits) -> Limits {
        let to_usize = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        let ms = |v: Option<u64>, base: Duration| v.map_or(base, Duration::from_millis);
        Limits {
            memory_bytes: self.memory_mib.map_or(base.memory_bytes, |mib| {
                to_usize(mib.saturating_mul(1 << 20))
            }),
            cpu_time: ms(self.cpu_ms, base.cpu_time),
            request_timeout: ms(self.request_timeout_ms, base.request_timeout),
            max_instances: self.max_instances.map_or(base.max_instances, to_usize),
            max_queued: self.max_queued.map_or(base.max_queued, to_usize),
            queue_timeout: ms(self.queue_timeout_ms, base.queue_timeout),
            max_body_bytes: self.max_body_bytes.unwrap_or(base.max_body_bytes),
            body_timeout: ms(self.body_timeout_ms, base.body_timeout),
            max_headers: self.max_headers.map_or(base.max_headers, to_usize),
            header_read_timeout: ms(self.header_read_timeout_ms, base.header_read_timeout),
            send_timeout: ms(self.send_timeout_ms, base.send_timeout),
            max_connections: self.max_connections.map_or(base.max_connections, to_usize),
            memory_budget_bytes: self
                .memory_budget_mib
                .map(|mib| mib.saturating_mul(1 << 20))
                .or(base.memory_budget_bytes),
            shutdown_grace: ms(self.shutdown_grace_ms, base.shutdown_grace),
        }
    }

    /// Which keys are set that only make sense app-wide.
    pub fn app_only_keys(&self) -> Vec<&'static str> {
        [
            ("max_headers", self.max_headers),
            ("header_read_timeout_ms", self.header_read_timeout_ms),
            ("send_timeout_ms", self.send_timeout_ms),
            ("max_connections", self.max_connections),
            ("memory_budget_mib", self.memory_budget_mib),
            ("shutdown_grace_ms", self.shutdown_grace_ms),
        ]
        .into_iter()
        .filter(|(_, v)| v.is_some())
        .map(|(k, _)| k)
        .collect()
    }

    /// Values that are zero (none of the limits may be zero but `max_queued`).
    pub fn zero_keys(&self) -> Vec<&'static str> {
        [
            ("memory_mib", self.memory_mib),
            ("cpu_ms", self.cpu_ms),
            ("request_timeout_ms", self.request_timeout_ms),
            ("max_instances", self.max_instances),
            ("queue_timeout_ms", self.queue_timeout_ms),
            ("max_body_bytes", self.max_body_bytes),
            ("body_timeout_ms", self.body_timeout_ms),
            ("max_headers", self.max_headers),
            ("header_read_timeout_ms", self.header_read_timeout_ms),
            ("send_timeout_ms", self.send_timeout_ms),
            ("max_connections", self.max_connections),
            ("memory_budget_mib", self.memory_budget_mib),
        ]
        .into_iter()
        .filter(|(_, v)| *v == Some(0))
        .map(|(k, _)| k)
        .collect()
    }
}
