//! Placement advice from the measured call graph.
//!
//! - **Colocate**: each remote edge costs `calls/s × (remote latency −
//!   colocated latency)` of waiting per second. The colocated latency is the
//!   same method's measured local latency when some job measured it (sampled
//!   local calls, `AMIMONO_LOCAL_SAMPLE_RATIO`); otherwise it is not known
//!   and counted as 0 (the saving is then an upper bound, and says so). The
//!   crossing's CPU (encoding, HTTP on both sides) is part of that time, so
//!   the time saved also bounds the CPU saved.
//! - **Split**: in a job of several components, one whose own busy time
//!   (time inside its calls and requests, less the time it waits on its
//!   callees) is both large and far above its neighbours' would rather run
//!   in a job of its own, with replicas of its own.
//!
//! Each suggestion names the manifest change: a `[layouts.<name>]` table
//! that implements it.

use super::graph::EdgeStats;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One suggestion.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Advice {
    /// `colocate` or `split`.
    pub kind: &'static str,
    /// The edge (`caller→component`) or the component it is about.
    pub subject: String,
    /// One sentence.
    pub summary: String,
    /// The figures behind it.
    pub details: Vec<String>,
    /// The manifest change: a named layout.
    pub layout: String,
    /// What it would save, µs of waiting per second (for ordering).
    pub score: f64,
}

/// The smallest busy share (of one core) worth a job of its own.
const SPLIT_MIN_BUSY: f64 = 0.2;
/// How far above the rest of its job a component must be to be split off.
const SPLIT_RATIO: f64 = 5.0;
/// Busy time one replica should take at most (of one core).
const REPLICA_BUSY: f64 = 0.5;

/// Advice for the app whose jobs are `jobs` (job → components), from the
/// per-method statistics `methods`, best first.
pub fn advise(jobs: &BTreeMap<String, Vec<String>>, methods: &[EdgeStats]) -> Vec<Advice> {
    let mut advice = colocations(jobs, methods);
    advice.extend(splits(jobs, methods));
    advice.sort_by(|a, b| b.score.total_cmp(&a.score));
    advice
}

fn job_of<'a>(jobs: &'a BTreeMap<String, Vec<String>>, label: &str) -> Option<&'a str> {
    jobs.iter()
        .find(|(_, members)| members.iter().any(|m| m == label))
        .map(|(job, _)| job.as_str())
}

fn colocations(jobs: &BTreeMap<String, Vec<String>>, methods: &[EdgeStats]) -> Vec<Advice> {
    let local_cost: BTreeMap<(&str, &str), f64> = methods
        .iter()
        .filter(|m| m.placement == "local")
        .filter_map(|m| Some(((m.component.as_str(), m.method.as_str()), m.mean_micros?)))
        .collect();
    let mut edges: BTreeMap<(String, String), Vec<&EdgeStats>> = BTreeMap::new();
    for m in methods.iter().filter(|m| m.placement == "remote") {
        edges
            .entry((m.caller.clone(), m.component.clone()))
            .or_default()
            .push(m);
    }
    let mut advice = Vec::new();
    for ((caller, component), methods) in edges {
        let (Some(caller_job), Some(callee_job)) =
            (job_of(jobs, &caller), job_of(jobs, &component))
        else {
            continue;
        };
        if caller_job == callee_job {
            continue;
        }
        let mut saved_per_second = 0.0;
        let mut calls_per_second = 0.0;
        let mut all_measured = true;
        let mut details = Vec::new();
        for m in &methods {
            let Some(remote) = m.mean_micros else {
                continue;
            };
            let local = local_cost
                .get(&(m.component.as_str(), m.method.as_str()))
                .copied();
            all_measured &= local.is_some();
            let per_call = (remote - local.unwrap_or(0.0)).max(0.0);
            let rate = m.calls_per_second;
            calls_per_second += rate;
            saved_per_second += rate * per_call;
            details.push(match local {
                Some(local) => format!(
                    "{}: {:.1} calls/s, {remote:.0} µs remote vs {local:.1} µs colocated (measured): saves {per_call:.0} µs per call",
                    m.method, rate
                ),
                None => format!(
                    "{}: {:.1} calls/s, {remote:.0} µs remote; colocated cost not measured (counted as 0: an upper bound; \
                     set AMIMONO_LOCAL_SAMPLE_RATIO in a layout that colocates them to measure it)",
                    m.method, rate
                ),
            });
        }
        let calls: f64 = methods.iter().map(|m| m.calls).sum();
        let bound = if all_measured { "" } else { "up to " };
        let summary = format!(
            "Colocate {caller} (job {caller_job}) with {component} (job {callee_job}): {bound}{:.1} ms of waiting per second saved \
             ({calls_per_second:.1} calls/s, {calls:.0} calls so far); the crossing's CPU (encoding, HTTP on both sides) is part of that time.",
            saved_per_second / 1000.0
        );
        let mut moved = jobs.clone();
        if let Some(members) = moved.get_mut(callee_job) {
            members.retain(|m| m != &component);
        }
        if let Some(members) = moved.get_mut(caller_job) {
            members.push(component.clone());
        }
        moved.retain(|_, members| !members.is_empty());
        advice.push(Advice {
            kind: "colocate",
            subject: format!("{caller}→{component}"),
            summary,
            details,
            layout: layout_toml(
                &format!("{caller}-with-{component}"),
                &moved,
                &BTreeMap::new(),
            ),
            // Edges with no calls in the window still rank, below the rest.
            score: saved_per_second + calls * 1e-6,
        });
    }
    advice
}

fn splits(jobs: &BTreeMap<String, Vec<String>>, methods: &[EdgeStats]) -> Vec<Advice> {
    // Busy time per second inside each component's calls, and the time its
    // own outgoing calls take (waiting, not its own work).
    let mut inside: BTreeMap<&str, f64> = BTreeMap::new();
    let mut waiting: BTreeMap<&str, f64> = BTreeMap::new();
    for m in methods {
        let busy = m.calls_per_second * m.mean_micros.unwrap_or(0.0) / 1e6;
        *inside.entry(m.component.as_str()).or_default() += busy;
        *waiting.entry(m.caller.as_str()).or_default() += busy;
    }
    let own = |label: &str| {
        (inside.get(label).copied().unwrap_or(0.0) - waiting.get(label).copied().unwrap_or(0.0))
            .max(0.0)
    };
    let mut advice = Vec::new();
    for (job, members) in jobs.iter().filter(|(_, m)| m.len() > 1) {
        let mut busy: Vec<(&String, f64)> = members.iter().map(|m| (m, own(m))).collect();
        busy.sort_by(|a, b| b.1.total_cmp(&a.1));
        let (heavy, most) = busy[0];
        let rest = busy[1..].iter().map(|(_, b)| *b).fold(0.0, f64::max);
        if most < SPLIT_MIN_BUSY || most < rest * SPLIT_RATIO {
            continue;
        }
        let replicas = (most / REPLICA_BUSY).ceil().max(1.0) as u32;
        let mut moved = jobs.clone();
        if let Some(members) = moved.get_mut(job) {
            members.retain(|m| m != heavy);
        }
        let own_job = heavy.to_string();
        moved.insert(own_job.clone(), vec![heavy.clone()]);
        let mut replica_counts = BTreeMap::new();
        replica_counts.insert(own_job, replicas);
        advice.push(Advice {
            kind: "split",
            subject: heavy.clone(),
            summary: format!(
                "Split {heavy} out of job {job}: it is busy {:.0} % of a core, the rest of the job at most {:.0} %; \
                 on its own it can have {replicas} replica(s) without copying the others.",
                most * 100.0,
                rest * 100.0
            ),
            details: busy
                .iter()
                .map(|(label, b)| format!("{label}: busy {:.1} % of a core", b * 100.0))
                .collect(),
            layout: layout_toml(&format!("split-{heavy}"), &moved, &replica_counts),
            score: most * 1e6,
        });
    }
    advice
}

/// A `[layouts.<name>.<job>]` table per job.
fn layout_toml(
    name: &str,
    jobs: &BTreeMap<String, Vec<String>>,
    replicas: &BTreeMap<String, u32>,
) -> String {
    let mut text = String::new();
    for (job, members) in jobs {
        let quoted: Vec<String> = members.iter().map(|m| format!("\"{m}\"")).collect();
        let _ = writeln!(text, "[layouts.{name}.{job}]");
        let _ = writeln!(text, "components = [{}]", quoted.join(", "));
        if let Some(count) = replicas.get(job) {
            let _ = writeln!(text, "replicas = {count}");
        }
        text.push('\n');
    }
    text.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(caller: &str, component: &str, placement: &str, rate: f64, mean: f64) -> EdgeStats {
        EdgeStats {
            caller: caller.into(),
            component: component.into(),
            method: format!("{component}#call"),
            placement: placement.into(),
            calls: rate * 10.0,
            calls_per_second: rate,
            error_rate: 0.0,
            p50_micros: Some(mean),
            p99_micros: Some(mean),
            mean_micros: Some(mean),
            bytes_per_second: 0.0,
        }
    }

    fn hello_jobs() -> BTreeMap<String, Vec<String>> {
        BTreeMap::from([
            ("web".to_string(), vec!["frontend".to_string()]),
            (
                "backend".to_string(),
                vec!["greeter".to_string(), "phrasebook".to_string()],
            ),
        ])
    }

    #[test]
    fn a_remote_edge_is_advised_colocated_with_the_layout_that_does_it() {
        let methods = [
            edge("frontend", "greeter", "remote", 100.0, 120.0),
            edge("greeter", "phrasebook", "local", 100.0, 2.0),
        ];
        let advice = advise(&hello_jobs(), &methods);
        let colocate = advice.iter().find(|a| a.kind == "colocate").unwrap();
        assert_eq!(colocate.subject, "frontend→greeter");
        assert!(
            colocate.summary.contains("up to 12.0 ms"),
            "{}",
            colocate.summary
        );
        assert_eq!(
            colocate.layout,
            "[layouts.frontend-with-greeter.backend]\ncomponents = [\"phrasebook\"]\n\n\
             [layouts.frontend-with-greeter.web]\ncomponents = [\"frontend\", \"greeter\"]"
        );
    }

    #[test]
    fn a_measured_colocated_cost_is_subtracted() {
        let methods = [
            edge("frontend", "greeter", "remote", 100.0, 120.0),
            edge("other", "greeter", "local", 100.0, 20.0),
        ];
        let jobs = BTreeMap::from([
            ("web".to_string(), vec!["frontend".to_string()]),
            (
                "backend".to_string(),
                vec!["greeter".to_string(), "other".to_string()],
            ),
        ]);
        let advice = advise(&jobs, &methods);
        let colocate = advice.iter().find(|a| a.kind == "colocate").unwrap();
        assert!(
            colocate.summary.contains(": 10.0 ms"),
            "{}",
            colocate.summary
        );
    }

    #[test]
    fn a_busy_component_among_idle_ones_is_advised_split() {
        let methods = [
            edge("frontend", "greeter", "remote", 10.0, 100.0),
            edge("greeter", "phrasebook", "local", 1000.0, 900.0),
        ];
        let advice = advise(&hello_jobs(), &methods);
        let split = advice.iter().find(|a| a.kind == "split").unwrap();
        assert_eq!(split.subject, "phrasebook");
        assert!(
            split.layout.contains(
                "[layouts.split-phrasebook.phrasebook]\ncomponents = [\"phrasebook\"]\nreplicas = 2"
            ),
            "{}",
            split.layout
        );
        assert!(
            advise(&hello_jobs(), &methods[..1])
                .iter()
                .all(|a| a.kind != "split")
        );
    }
}
