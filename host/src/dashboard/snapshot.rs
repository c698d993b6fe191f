//! One scrape of every job's `GET /metrics`, reduced to what the dashboard
//! draws: per call edge (caller → component.method, local or remote) the
//! counters and the latency histogram, summed over jobs and replicas.

use prometheus_parse::{Sample, Scrape, Value};
use std::collections::BTreeMap;
use std::time::Instant;

/// One edge of the call graph, per method.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct EdgeKey {
    /// The calling component.
    pub caller: String,
    /// The called component.
    pub component: String,
    /// `<interface>#<function>`.
    pub method: String,
    /// `local` or `remote`.
    pub placement: String,
}

/// Cumulative totals of one edge.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EdgeTotals {
    /// Calls (sampled local calls scaled up by the job).
    pub calls: f64,
    /// Failed calls.
    pub errors: f64,
    /// Latency histogram: (upper bound in µs, cumulative count), ascending.
    pub latency_buckets: Vec<(f64, f64)>,
    /// Sum of latencies in µs (of the calls measured).
    pub latency_sum: f64,
    /// Calls measured (sampled local calls not scaled).
    pub latency_count: f64,
    /// Bytes of arguments and results.
    pub bytes: f64,
}

/// Every job's metrics at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// When the scrape finished.
    pub at: Instant,
    /// Per edge.
    pub edges: BTreeMap<EdgeKey, EdgeTotals>,
    /// HTTP requests per component: (requests, latency sum µs, count).
    pub http: BTreeMap<String, (f64, f64, f64)>,
    /// Which jobs answered, and which did not (with why).
    pub unreachable: BTreeMap<String, String>,
}

impl Snapshot {
    /// An empty snapshot taken now.
    pub fn new() -> Snapshot {
        Snapshot {
            at: Instant::now(),
            edges: BTreeMap::new(),
            http: BTreeMap::new(),
            unreachable: BTreeMap::new(),
        }
    }

    /// Adds one job's `/metrics` text.
    pub fn add(&mut self, text: &str) {
        let lines = text.lines().map(|l| Ok(l.to_string()));
        let Ok(scrape) = Scrape::parse(lines) else {
            return;
        };
        for sample in &scrape.samples {
            self.add_sample(sample);
        }
    }

    fn add_sample(&mut self, sample: &Sample) {
        let value = match &sample.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(_) | Value::Summary(_) => 0.0,
        };
        let name = sample.metric.as_str();
        if let Some(rest) = name.strip_prefix("amimono_method_") {
            let label = |name: &str| sample.labels.get(name).unwrap_or("").to_string();
            let key = EdgeKey {
                caller: label("caller"),
                component: label("component"),
                method: label("method"),
                placement: label("placement"),
            };
            let edge = self.edges.entry(key).or_default();
            match (rest, &sample.value) {
                ("count", _) => edge.calls += value,
                ("error_count", _) => edge.errors += value,
                ("latency_micros", Value::Histogram(buckets)) => {
                    merge_buckets(
                        &mut edge.latency_buckets,
                        buckets.iter().map(|b| (b.less_than, b.count)),
                    );
                }
                ("latency_micros_sum", _) => edge.latency_sum += value,
                ("latency_micros_count", _) => edge.latency_count += value,
                ("bytes_request_sum" | "bytes_reply_sum", _) => edge.bytes += value,
                _ => {}
            }
        } else if let Some(component) = sample.labels.get("component") {
            let entry = self.http.entry(component.to_string()).or_default();
            match name {
                "amimono_http_requests_total" => entry.0 += value,
                "amimono_http_latency_micros_sum" => entry.1 += value,
                "amimono_http_latency_micros_count" => entry.2 += value,
                _ => {}
            }
        }
    }
}

impl Default for Snapshot {
    fn default() -> Self {
        Snapshot::new()
    }
}

/// Adds `more` cumulative buckets into `into` (same bounds: every job uses
/// the same histogram definition).
fn merge_buckets(into: &mut Vec<(f64, f64)>, more: impl Iterator<Item = (f64, f64)>) {
    for (bound, count) in more {
        match into.iter_mut().find(|(b, _)| *b == bound) {
            Some(entry) => entry.1 += count,
            None => into.push((bound, count)),
        }
    }
    into.sort_by(|a, b| a.0.total_cmp(&b.0));
}

/// The `q` quantile (0..1) of a cumulative histogram, interpolated inside
/// its bucket; `None` without observations.
pub fn quantile(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(bound, count) in buckets {
        if count >= rank {
            if bound.is_infinite() {
                return Some(lower.0);
            }
            let inside = count - lower.1;
            let fraction = if inside > 0.0 {
                (rank - lower.1) / inside
            } else {
                1.0
            };
            return Some(lower.0 + (bound - lower.0) * fraction);
        }
        lower = (bound, count);
    }
    Some(lower.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP amimono_method_count Calls.
# TYPE amimono_method_count counter
amimono_method_count{caller="frontend",component="greeter",method="g#greet",placement="remote"} 4
# TYPE amimono_method_error_count counter
amimono_method_error_count{caller="frontend",component="greeter",method="g#greet",placement="remote"} 1
# TYPE amimono_method_latency_micros histogram
amimono_method_latency_micros_bucket{caller="frontend",component="greeter",method="g#greet",placement="remote",le="100"} 1
amimono_method_latency_micros_bucket{caller="frontend",component="greeter",method="g#greet",placement="remote",le="200"} 4
amimono_method_latency_micros_bucket{caller="frontend",component="greeter",method="g#greet",placement="remote",le="+Inf"} 4
amimono_method_latency_micros_sum{caller="frontend",component="greeter",method="g#greet",placement="remote"} 600
amimono_method_latency_micros_count{caller="frontend",component="greeter",method="g#greet",placement="remote"} 4
# TYPE amimono_http_requests_total counter
amimono_http_requests_total{component="frontend",status="200"} 4
"#;

    #[test]
    fn an_edge_is_read_with_its_counts_and_histogram() {
        let mut snapshot = Snapshot::new();
        snapshot.add(TEXT);
        snapshot.add(TEXT);
        let (key, edge) = snapshot.edges.iter().next().unwrap();
        assert_eq!(key.caller, "frontend");
        assert_eq!(key.placement, "remote");
        assert_eq!(edge.calls, 8.0);
        assert_eq!(edge.errors, 2.0);
        assert_eq!(edge.latency_sum, 1200.0);
        assert_eq!(edge.latency_count, 8.0);
        assert_eq!(edge.latency_buckets.len(), 3);
        assert_eq!(snapshot.http["frontend"].0, 8.0);
    }

    #[test]
    fn quantiles_interpolate_inside_their_bucket() {
        let buckets = [(100.0, 1.0), (200.0, 4.0), (f64::INFINITY, 4.0)];
        assert_eq!(quantile(&buckets, 0.25), Some(100.0));
        assert_eq!(quantile(&buckets, 1.0), Some(200.0));
        let median = quantile(&buckets, 0.5).unwrap();
        assert!((median - (100.0 + 100.0 / 3.0)).abs() < 1e-9, "{median}");
        assert_eq!(quantile(&[], 0.5), None);
    }
}
