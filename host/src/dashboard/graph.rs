//! The live call graph: rates between the oldest and the newest snapshot of
//! the dashboard's window, per edge (caller → component, local or remote)
//! and per method.

use super::snapshot::{EdgeKey, EdgeTotals, Snapshot, quantile};
use serde::Serialize;
use std::collections::BTreeMap;

/// One edge, all its methods together, or one method.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EdgeStats {
    /// The calling component.
    pub caller: String,
    /// The called component.
    pub component: String,
    /// The method (`*` for an edge's total).
    pub method: String,
    /// `local` or `remote`.
    pub placement: String,
    /// Calls since the job started.
    pub calls: f64,
    /// Calls per second over the window.
    pub calls_per_second: f64,
    /// Failed calls ÷ calls over the window (since start if none in it).
    pub error_rate: f64,
    /// Median latency, µs.
    pub p50_micros: Option<f64>,
    /// 99th percentile latency, µs.
    pub p99_micros: Option<f64>,
    /// Mean latency, µs.
    pub mean_micros: Option<f64>,
    /// Arguments and results per second.
    pub bytes_per_second: f64,
}

/// What changed between two cumulative totals; the totals themselves when
/// nothing did, or there is no older snapshot (the graph still shows what
/// happened before the window).
fn window(old: Option<&EdgeTotals>, new: &EdgeTotals) -> (EdgeTotals, bool) {
    let Some(old) = old else {
        return (new.clone(), false);
    };
    if new.calls <= old.calls {
        return (new.clone(), false);
    }
    let buckets = new
        .latency_buckets
        .iter()
        .map(|&(bound, count)| {
            let before = old
                .latency_buckets
                .iter()
                .find(|(b, _)| *b == bound)
                .map_or(0.0, |(_, c)| *c);
            (bound, count - before)
        })
        .collect();
    (
        EdgeTotals {
            calls: new.calls - old.calls,
            errors: new.errors - old.errors,
            latency_buckets: buckets,
            latency_sum: new.latency_sum - old.latency_sum,
            latency_count: new.latency_count - old.latency_count,
            bytes: new.bytes - old.bytes,
        },
        true,
    )
}

fn stats(key: &EdgeKey, old: Option<&EdgeTotals>, new: &EdgeTotals, seconds: f64) -> EdgeStats {
    let (delta, moved) = window(old, new);
    let per_second = |v: f64| {
        if moved && seconds > 0.0 {
            v / seconds
        } else {
            0.0
        }
    };
    EdgeStats {
        caller: key.caller.clone(),
        component: key.component.clone(),
        method: key.method.clone(),
        placement: key.placement.clone(),
        calls: new.calls,
        calls_per_second: per_second(delta.calls),
        error_rate: if delta.calls > 0.0 {
            delta.errors / delta.calls
        } else {
            0.0
        },
        p50_micros: quantile(&delta.latency_buckets, 0.5),
        p99_micros: quantile(&delta.latency_buckets, 0.99),
        mean_micros: (delta.latency_count > 0.0).then(|| delta.latency_sum / delta.latency_count),
        bytes_per_second: per_second(delta.bytes),
    }
}

/// Per-method statistics of every edge over the window `old..new`.
pub fn methods(old: Option<&Snapshot>, new: &Snapshot) -> Vec<EdgeStats> {
    let seconds = old.map_or(0.0, |o| new.at.duration_since(o.at).as_secs_f64());
    new.edges
        .iter()
        .filter(|(_, totals)| totals.calls > 0.0)
        .map(|(key, totals)| {
            // An edge the older snapshot lacks had no calls then.
            let before = old.map(|o| o.edges.get(key).cloned().unwrap_or_default());
            stats(key, before.as_ref(), totals, seconds)
        })
        .collect()
}

/// Per-edge statistics (methods summed) over the window `old..new`.
pub fn edges(old: Option<&Snapshot>, new: &Snapshot) -> Vec<EdgeStats> {
    let sum = |snapshot: &Snapshot| {
        let mut edges: BTreeMap<EdgeKey, EdgeTotals> = BTreeMap::new();
        for (key, totals) in &snapshot.edges {
            let key = EdgeKey {
                method: "*".into(),
                ..key.clone()
            };
            let edge = edges.entry(key).or_default();
            edge.calls += totals.calls;
            edge.errors += totals.errors;
            edge.latency_sum += totals.latency_sum;
            edge.latency_count += totals.latency_count;
            edge.bytes += totals.bytes;
            for &(bound, count) in &totals.latency_buckets {
                match edge.latency_buckets.iter_mut().find(|(b, _)| *b == bound) {
                    Some(entry) => entry.1 += count,
                    None => edge.latency_buckets.push((bound, count)),
                }
            }
            edge.latency_buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
        Snapshot {
            edges,
            ..snapshot.clone()
        }
    };
    let new = sum(new);
    methods(old.map(sum).as_ref(), &new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn snapshot(calls: f64, errors: f64, at_seconds: u64, base: std::time::Instant) -> Snapshot {
        let mut s = Snapshot::new();
        s.at = base + Duration::from_secs(at_seconds);
        for method in ["a", "b"] {
            s.edges.insert(
                EdgeKey {
                    caller: "frontend".into(),
                    component: "greeter".into(),
                    method: method.into(),
                    placement: "remote".into(),
                },
                EdgeTotals {
                    calls,
                    errors,
                    latency_buckets: vec![(100.0, calls), (f64::INFINITY, calls)],
                    latency_sum: calls * 50.0,
                    latency_count: calls,
                    bytes: calls * 10.0,
                },
            );
        }
        s
    }

    #[test]
    fn rates_come_from_the_window_and_methods_add_up() {
        let base = std::time::Instant::now();
        let (old, new) = (snapshot(10.0, 0.0, 0, base), snapshot(30.0, 2.0, 10, base));
        let edges = edges(Some(&old), &new);
        assert_eq!(edges.len(), 1);
        let edge = &edges[0];
        assert_eq!(edge.method, "*");
        assert_eq!(edge.calls, 60.0);
        assert!((edge.calls_per_second - 4.0).abs() < 1e-9, "{edge:?}");
        assert!((edge.error_rate - 0.1).abs() < 1e-9, "{edge:?}");
        assert_eq!(edge.mean_micros, Some(50.0));
        assert!((edge.bytes_per_second - 40.0).abs() < 1e-9);
    }

    #[test]
    fn with_nothing_new_the_totals_show_and_the_rates_are_zero() {
        let base = std::time::Instant::now();
        let (old, new) = (snapshot(10.0, 0.0, 0, base), snapshot(10.0, 0.0, 5, base));
        let methods = methods(Some(&old), &new);
        assert_eq!(methods.len(), 2);
        assert_eq!(methods[0].calls_per_second, 0.0);
        assert_eq!(methods[0].mean_micros, Some(50.0));
    }

    #[test]
    fn an_edge_new_in_the_window_has_a_rate() {
        let base = std::time::Instant::now();
        let mut old = snapshot(0.0, 0.0, 0, base);
        old.edges.clear();
        let new = snapshot(20.0, 0.0, 10, base);
        let edges = edges(Some(&old), &new);
        assert!((edges[0].calls_per_second - 4.0).abs() < 1e-9, "{edges:?}");
    }
}
