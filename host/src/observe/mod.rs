//! Observing a running job: what it tells its operator. [`metrics`] holds
//! the job's Prometheus registry (served by the admin listener's
//! `GET /metrics`); [`tapped`] measures a sampled share of colocated calls
//! without touching the graphs that serve; [`traces`] makes spans and
//! exports them over OTLP; [`logs`] writes log lines as text or JSON.

pub mod logs;
pub mod metrics;
pub mod tapped;
pub mod traces;
