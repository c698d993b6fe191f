//! A job's Prometheus metrics: one registry per job, rendered as the text
//! exposition format on the admin listener's `GET /metrics`.
//!
//! - **Method metrics** for calls between components, Service Weaver's set:
//!   `amimono_method_count`, `amimono_method_error_count`,
//!   `amimono_method_latency_micros`, `amimono_method_bytes_request`,
//!   `amimono_method_bytes_reply`, labelled `caller`, `component`, `method`
//!   and `placement` (`remote`: recorded by the caller's remote stub for
//!   every call; `local`: recorded for the sampled share of requests that
//!   run a tapped graph, counts scaled by the
//!   inverse of `amimono_local_sample_ratio`, histograms unscaled).
//! - **HTTP ingress** per component: `amimono_http_requests_total{component,
//!   status}` and `amimono_http_latency_micros{component}` (until the
//!   response head).
//! - **Host metrics** per component: instances created, instances in use,
//!   warm spares, traps, epoch interruptions, CPU-limit kills, memory-limit
//!   refusals, remote-call retries; and revision refusals.
//!
//! Handles ([`MethodMetrics`], [`ComponentMetrics`]) are resolved once
//! (per remote function, per component), so recording on a hot path is a few
//! atomic additions, no label lookup.

use crate::observe::traces::Tracing;
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::time::Duration;

/// Latency buckets in microseconds: 1 µs to 10 s, about three per decade.
const LATENCY_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5,
    5e5, 1e6, 2e6, 5e6, 1e7,
];

/// Size buckets in bytes: 16 B to 16 MiB, one per power of four.
const BYTES_BUCKETS: &[f64] = &[
    16.0,
    64.0,
    256.0,
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
];

/// Where a call ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Inside this process (a colocated call, seen in a tapped graph).
    Local,
    /// In another job, over the remote-call protocol.
    Remote,
}

impl Placement {
    fn label(self) -> &'static str {
        match self {
            Placement::Local => "local",
            Placement::Remote => "remote",
        }
    }
}

/// Environment variable: `off` turns a job's metrics off (they are on by
/// default: recording is a few atomic additions per request).
pub const METRICS_ENV: &str = "AMIMONO_METRICS";

/// Whether `AMIMONO_METRICS` leaves metrics on (unset, `on`) or turns them
/// off (`off`); anything else is refused, naming the variable.
pub fn enabled_from_environment() -> anyhow::Result<bool> {
    match std::env::var(METRICS_ENV).as_deref() {
        Err(_) | Ok("on") | Ok("1") => Ok(true),
        Ok("off") | Ok("0") => Ok(false),
        Ok(other) => anyhow::bail!("{METRICS_ENV}={other:?}: expected `on` or `off`"),
    }
}

/// Every metric family of one job.
pub struct Metrics {
    registry: Registry,
    /// Off: handles count into nothing exported, `/metrics` shows only
    /// `amimono_job_info`.
    enabled: bool,
    /// The job's spans ([`crate::observe::traces`]): made where the
    /// measurements are taken, so they travel with the metric handles.
    pub tracing: Tracing,
    method_count: IntCounterVec,
    method_errors: IntCounterVec,
    method_latency: HistogramVec,
    method_bytes_request: HistogramVec,
    method_bytes_reply: HistogramVec,
    http_requests: IntCounterVec,
    http_latency: HistogramVec,
    instances_created: IntCounterVec,
    instances_in_use: IntGaugeVec,
    warm_spares: IntGaugeVec,
    traps: IntCounterVec,
    epoch_interruptions: IntCounterVec,
    cpu_limit_kills: IntCounterVec,
    memory_limit_refusals: IntCounterVec,
    remote_retries: IntCounterVec,
    revision_refusals: IntCounter,
    local_sample_ratio: Gauge,
}

/// What identifies the process in every scrape: `amimono_job_info`.
pub struct JobIdentity<'a> {
    /// The app's name.
    pub app: &'a str,
    /// The job (or `_local`).
    pub job: &'a str,
    /// The bundle's or directory's revision.
    pub revision: &'a str,
    /// This replica's index.
    pub replica: u32,
}

/// The value of a metric definition. Names, help texts and labels here are
/// constants (the tests make every one of them): an error is a programming
/// error, not something a running job can meet.
#[allow(clippy::expect_used)]
fn constant<T>(made: prometheus::Result<T>) -> T {
    made.expect("metric definitions are constants")
}

/// Metrics that count into no registry (recording off, stores made
/// outside a job).
fn detached_counter() -> IntCounter {
    constant(IntCounter::new("detached", "detached"))
}

fn detached_gauge() -> IntGauge {
    constant(IntGauge::new("detached", "detached"))
}

fn detached_histogram() -> Histogram {
    constant(Histogram::with_opts(HistogramOpts::new(
        "detached", "detached",
    )))
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let family = constant(IntCounterVec::new(Opts::new(name, help), labels));
    constant(registry.register(Box::new(family.clone())));
    family
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let family = constant(IntGaugeVec::new(Opts::new(name, help), labels));
    constant(registry.register(Box::new(family.clone())));
    family
}

fn histogram_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    buckets: &[f64],
    labels: &[&str],
) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    let family = constant(HistogramVec::new(opts, labels));
    constant(registry.register(Box::new(family.clone())));
    family
}

const METHOD_LABELS: &[&str] = &["caller", "component", "method", "placement"];

impl Metrics {
    /// The families of a job, with `amimono_job_info` set from `identity`.
    pub fn new(identity: &JobIdentity<'_>) -> Metrics {
        let registry = Registry::new();
        let r = &registry;
        let info = gauge_vec(
            r,
            "amimono_job_info",
            "The app, job, revision and replica this process runs (always 1).",
            &["app", "amimono_job", "revision", "replica"],
        );
        info.with_label_values(&[
            identity.app,
            identity.job,
            identity.revision,
            &identity.replica.to_string(),
        ])
        .set(1);
        let local_sample_ratio = constant(Gauge::new(
            "amimono_local_sample_ratio",
            "Share of requests that run a tapped graph, whose colocated calls are measured (0: none).",
        ));
        constant(registry.register(Box::new(local_sample_ratio.clone())));
        let revision_refusals = constant(IntCounter::new(
            "amimono_revision_refusals_total",
            "Calls from other jobs refused because the caller runs another revision.",
        ));
        constant(registry.register(Box::new(revision_refusals.clone())));
        Metrics {
            method_count: counter_vec(
                r,
                "amimono_method_count",
                "Calls of a component's method.",
                METHOD_LABELS,
            ),
            method_errors: counter_vec(
                r,
                "amimono_method_error_count",
                "Calls of a component's method that failed (trap, transport, refusal).",
                METHOD_LABELS,
            ),
            method_latency: histogram_vec(
                r,
                "amimono_method_latency_micros",
                "Duration of a call of a component's method, in microseconds.",
                LATENCY_BUCKETS,
                METHOD_LABELS,
            ),
            method_bytes_request: histogram_vec(
                r,
                "amimono_method_bytes_request",
                "Encoded size of a call's arguments, in bytes.",
                BYTES_BUCKETS,
                METHOD_LABELS,
            ),
            method_bytes_reply: histogram_vec(
                r,
                "amimono_method_bytes_reply",
                "Encoded size of a call's results, in bytes.",
                BYTES_BUCKETS,
                METHOD_LABELS,
            ),
            http_requests: counter_vec(
                r,
                "amimono_http_requests_total",
                "HTTP requests answered by a component, by status.",
                &["component", "status"],
            ),
            http_latency: histogram_vec(
                r,
                "amimono_http_latency_micros",
                "Time from a request's arrival to its response head, in microseconds.",
                LATENCY_BUCKETS,
                &["component"],
            ),
            instances_created: counter_vec(
                r,
                "amimono_instances_created_total",
                "Instances of a component's graph created (one per request or call).",
                &["component"],
            ),
            instances_in_use: gauge_vec(
                r,
                "amimono_instances_in_use",
                "Instance slots of a component taken now.",
                &["component"],
            ),
            warm_spares: gauge_vec(
                r,
                "amimono_warm_spares",
                "Instances of a component's graph made ahead and ready now.",
                &["component"],
            ),
            traps: counter_vec(
                r,
                "amimono_traps_total",
                "Requests and calls whose instance trapped.",
                &["component"],
            ),
            epoch_interruptions: counter_vec(
                r,
                "amimono_epoch_interruptions_total",
                "Epoch ticks that interrupted a running guest (it yields, or is stopped at its CPU limit).",
                &["component"],
            ),
            cpu_limit_kills: counter_vec(
                r,
                "amimono_cpu_limit_kills_total",
                "Instances stopped at their CPU time limit.",
                &["component"],
            ),
            memory_limit_refusals: counter_vec(
                r,
                "amimono_memory_limit_refusals_total",
                "memory.grow refused by the instance's memory limit or the job's memory budget.",
                &["component"],
            ),
            remote_retries: counter_vec(
                r,
                "amimono_remote_call_retries_total",
                "Remote calls to a component sent again (another address, or an idempotent call).",
                &["component"],
            ),
            revision_refusals,
            local_sample_ratio,
            registry,
            enabled: true,
            tracing: Tracing::off(),
        }
    }

    /// The same registry, spans going to `tracing`.
    pub fn with_tracing(mut self, tracing: Tracing) -> Metrics {
        self.tracing = tracing;
        self
    }

    /// The same registry with recording off ([`METRICS_ENV`]).
    pub fn disabled(mut self) -> Metrics {
        self.enabled = false;
        self
    }

    /// The handles of one edge `caller → component.method`.
    pub fn method(
        &self,
        caller: &str,
        component: &str,
        method: &str,
        placement: Placement,
    ) -> MethodMetrics {
        if !self.enabled {
            return MethodMetrics::detached();
        }
        let labels = [caller, component, method, placement.label()];
        MethodMetrics {
            count: self.method_count.with_label_values(&labels),
            errors: self.method_errors.with_label_values(&labels),
            latency: self.method_latency.with_label_values(&labels),
            bytes_request: self.method_bytes_request.with_label_values(&labels),
            bytes_reply: self.method_bytes_reply.with_label_values(&labels),
        }
    }

    /// The handles of component `label`.
    pub fn component(&self, label: &str) -> ComponentMetrics {
        if !self.enabled {
            return ComponentMetrics {
                tracing: self.tracing.clone(),
                ..ComponentMetrics::detached()
            };
        }
        let labels = [label];
        ComponentMetrics {
            tracing: self.tracing.clone(),
            label: label.into(),
            http_requests: Some(self.http_requests.clone()),
            http_latency: self.http_latency.with_label_values(&labels),
            instances_created: self.instances_created.with_label_values(&labels),
            instances_in_use: self.instances_in_use.with_label_values(&labels),
            warm_spares: self.warm_spares.with_label_values(&labels),
            traps: self.traps.with_label_values(&labels),
            epoch_interruptions: self.epoch_interruptions.with_label_values(&labels),
            cpu_limit_kills: self.cpu_limit_kills.with_label_values(&labels),
            memory_limit_refusals: self.memory_limit_refusals.with_label_values(&labels),
            remote_retries: self.remote_retries.with_label_values(&labels),
        }
    }

    /// The retries counter of remote calls to component `label`.
    pub fn remote_retries(&self, label: &str) -> IntCounter {
        if !self.enabled {
            return detached_counter();
        }
        self.remote_retries.with_label_values(&[label])
    }

    /// Counts a call refused for its caller's revision.
    pub fn revision_refused(&self) {
        if self.enabled {
            self.revision_refusals.inc();
        }
    }

    /// Publishes the share of requests that measure colocated calls.
    pub fn set_local_sample_ratio(&self, ratio: f64) {
        self.local_sample_ratio.set(ratio);
    }

    /// Every metric in the Prometheus text exposition format (0.0.4).
    pub fn render(&self) -> String {
        let mut text = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut text) {
            tracing::warn!(error = %e, "cannot render the metrics");
        }
        String::from_utf8(text).unwrap_or_default()
    }
}

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The handles of one edge `caller → component.method`.
#[derive(Clone)]
pub struct MethodMetrics {
    count: IntCounter,
    errors: IntCounter,
    latency: Histogram,
    bytes_request: Histogram,
    bytes_reply: Histogram,
}

/// What one call (or one sampled call standing for `weight` calls) did.
pub struct CallRecord {
    /// How long it took.
    pub elapsed: Duration,
    /// Encoded size of the arguments.
    pub request_bytes: usize,
    /// Encoded size of the results (0 when it failed).
    pub reply_bytes: usize,
    /// Whether it failed.
    pub failed: bool,
    /// Calls it stands for (1, or the inverse of the sampling ratio).
    pub weight: u64,
}

impl MethodMetrics {
    /// Handles that count into no registry.
    pub fn detached() -> MethodMetrics {
        MethodMetrics {
            count: detached_counter(),
            errors: detached_counter(),
            latency: detached_histogram(),
            bytes_request: detached_histogram(),
            bytes_reply: detached_histogram(),
        }
    }

    /// Records one call.
    pub fn record(&self, call: &CallRecord) {
        self.count.inc_by(call.weight);
        if call.failed {
            self.errors.inc_by(call.weight);
        }
        self.latency.observe(call.elapsed.as_secs_f64() * 1e6);
        self.bytes_request.observe(call.request_bytes as f64);
        self.bytes_reply.observe(call.reply_bytes as f64);
    }
}

/// The handles of one component. [`ComponentMetrics::detached`] records
/// into metrics no registry exports (stores made outside a job).
#[derive(Clone)]
pub struct ComponentMetrics {
    label: std::sync::Arc<str>,
    http_requests: Option<IntCounterVec>,
    http_latency: Histogram,
    /// Instances created.
    pub instances_created: IntCounter,
    /// Instance slots taken now.
    pub instances_in_use: IntGauge,
    /// Spares ready now.
    pub warm_spares: IntGauge,
    /// Traps.
    pub traps: IntCounter,
    /// Epoch ticks that interrupted a guest.
    pub epoch_interruptions: IntCounter,
    /// Instances stopped at their CPU limit.
    pub cpu_limit_kills: IntCounter,
    /// `memory.grow` refusals.
    pub memory_limit_refusals: IntCounter,
    /// Remote calls sent again.
    pub remote_retries: IntCounter,
    /// The job's spans.
    pub tracing: Tracing,
}

impl std::fmt::Debug for ComponentMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComponentMetrics")
            .field("component", &self.label)
            .finish_non_exhaustive()
    }
}

impl ComponentMetrics {
    /// Handles that count into no registry.
    pub fn detached() -> ComponentMetrics {
        ComponentMetrics {
            label: "".into(),
            http_requests: None,
            http_latency: detached_histogram(),
            instances_created: detached_counter(),
            instances_in_use: detached_gauge(),
            warm_spares: detached_gauge(),
            traps: detached_counter(),
            epoch_interruptions: detached_counter(),
            cpu_limit_kills: detached_counter(),
            memory_limit_refusals: detached_counter(),
            remote_retries: detached_counter(),
            tracing: Tracing::off(),
        }
    }

    /// Records one HTTP request answered with `status` after `elapsed`.
    pub fn http_answered(&self, status: u16, elapsed: Duration) {
        if let Some(requests) = &self.http_requests {
            requests
                .with_label_values(&[&*self.label, status.to_string().as_str()])
                .inc();
        }
        self.http_latency.observe(elapsed.as_secs_f64() * 1e6);
    }
}

impl Default for ComponentMetrics {
    fn default() -> Self {
        ComponentMetrics::detached()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> Metrics {
        Metrics::new(&JobIdentity {
            app: "hello",
            job: "web",
            revision: "abc",
            replica: 0,
        })
    }

    #[test]
    fn a_recorded_call_appears_with_its_edge_labels_and_weight() {
        let metrics = metrics();
        let edge = metrics.method("frontend", "greeter", "greet", Placement::Remote);
        edge.record(&CallRecord {
            elapsed: Duration::from_micros(80),
            request_bytes: 10,
            reply_bytes: 20,
            failed: false,
            weight: 1,
        });
        let local = metrics.method("greeter", "phrasebook", "phrase", Placement::Local);
        local.record(&CallRecord {
            elapsed: Duration::from_nanos(500),
            request_bytes: 3,
            reply_bytes: 0,
            failed: true,
            weight: 100,
        });
        let text = metrics.render();
        assert!(
            text.contains(r#"amimono_method_count{caller="frontend",component="greeter",method="greet",placement="remote"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"amimono_method_count{caller="greeter",component="phrasebook",method="phrase",placement="local"} 100"#),
            "{text}"
        );
        assert!(
            text.contains(r#"amimono_method_error_count{caller="greeter",component="phrasebook",method="phrase",placement="local"} 100"#),
            "{text}"
        );
        assert!(
            text.contains(r#"amimono_method_bytes_reply_sum{caller="frontend",component="greeter",method="greet",placement="remote"} 20"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"amimono_job_info{amimono_job="web",app="hello",replica="0",revision="abc"} 1"#
            ),
            "{text}"
        );
    }

    #[test]
    fn http_answers_are_counted_by_component_and_status() {
        let metrics = metrics();
        let frontend = metrics.component("frontend");
        frontend.http_answered(200, Duration::from_micros(50));
        frontend.http_answered(200, Duration::from_micros(70));
        frontend.http_answered(503, Duration::from_micros(5));
        frontend.traps.inc();
        let text = metrics.render();
        assert!(
            text.contains(r#"amimono_http_requests_total{component="frontend",status="200"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"amimono_http_requests_total{component="frontend",status="503"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"amimono_http_latency_micros_count{component="frontend"} 3"#),
            "{text}"
        );
        assert!(
            text.contains(r#"amimono_traps_total{component="frontend"} 1"#),
            "{text}"
        );
        // Detached handles count, but into nothing exported.
        ComponentMetrics::detached().http_answered(200, Duration::ZERO);
    }
}
