//! Resource limits: what one instance may use (linear memory, CPU time) and
//! what the job's servers accept (concurrent instances, request body and
//! header sizes, header-read time). Defaults below; the manifest's `[limits]`
//! table changes them for the app, `[components.<label>.limits]` for the
//! graphs a component is the entry of. Documented in `docs/capabilities.md`.

use std::time::Duration;

/// The limits in force for one graph or server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes each linear memory of an instance may grow to.
    pub memory_bytes: usize,
    /// Time an instance may spend running wasm for one request or call
    /// (counted in epoch ticks while it runs, not while it waits).
    pub cpu_time: Duration,
    /// Instances alive at once in the job's process; requests beyond wait.
    pub max_instances: usize,
    /// Largest request body accepted (HTTP 413 above).
    pub max_body_bytes: u64,
    /// Most request headers accepted (HTTP 431 above).
    pub max_headers: usize,
    /// Time a client has to send a request's headers before the connection is closed.
    pub header_read_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 128 << 20,
            cpu_time: Duration::from_secs(10),
            max_instances: 500,
            max_body_bytes: 16 << 20,
            max_headers: 100,
            header_read_timeout: Duration::from_secs(5),
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
    /// `max_instances`: concurrent instances per job (app level only).
    pub max_instances: Option<u64>,
    /// `max_body_bytes`: largest request body (app level only).
    pub max_body_bytes: Option<u64>,
    /// `max_headers`: most request headers (app level only).
    pub max_headers: Option<u64>,
    /// `header_read_timeout_ms` (app level only).
    pub header_read_timeout_ms: Option<u64>,
}

impl LimitOverrides {
    /// `base` with these overrides applied.
    pub fn apply(&self, base: Limits) -> Limits {
        let to_usize = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        Limits {
            memory_bytes: self.memory_mib.map_or(base.memory_bytes, |mib| {
                to_usize(mib.saturating_mul(1 << 20))
            }),
            cpu_time: self.cpu_ms.map_or(base.cpu_time, Duration::from_millis),
            max_instances: self.max_instances.map_or(base.max_instances, to_usize),
            max_body_bytes: self.max_body_bytes.unwrap_or(base.max_body_bytes),
            max_headers: self.max_headers.map_or(base.max_headers, to_usize),
            header_read_timeout: self
                .header_read_timeout_ms
                .map_or(base.header_read_timeout, Duration::from_millis),
        }
    }

    /// Which keys are set that only make sense app-wide.
    pub fn app_only_keys(&self) -> Vec<&'static str> {
        let mut keys = Vec::new();
        if self.max_instances.is_some() {
            keys.push("max_instances");
        }
        if self.max_body_bytes.is_some() {
            keys.push("max_body_bytes");
        }
        if self.max_headers.is_some() {
            keys.push("max_headers");
        }
        if self.header_read_timeout_ms.is_some() {
            keys.push("header_read_timeout_ms");
        }
        keys
    }

    /// Values that are zero (none of the limits may be zero).
    pub fn zero_keys(&self) -> Vec<&'static str> {
        [
            ("memory_mib", self.memory_mib),
            ("cpu_ms", self.cpu_ms),
            ("max_instances", self.max_instances),
            ("max_body_bytes", self.max_body_bytes),
            ("max_headers", self.max_headers),
            ("header_read_timeout_ms", self.header_read_timeout_ms),
        ]
        .into_iter()
        .filter(|(_, v)| *v == Some(0))
        .map(|(k, _)| k)
        .collect()
    }
}
