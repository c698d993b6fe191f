//! Observing a running job: what it tells its operator. [`metrics`] holds
//! the job's Prometheus registry (served by the admin listener's
//! `GET /metrics`).

pub mod metrics;
