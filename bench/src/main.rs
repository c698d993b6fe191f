//! Amimono's benchmarks. `cargo xtask bench` runs them and prints one
//! table per measure; `--quick` runs short versions (CI runs it, so the suite
//! cannot rot). Every ratio is measured side by side in one run, rounds
//! interleaved, medians reported: this machine is noisy. Results also go to
//! `target/bench/results.json`, shaped `{"PF1": {"ratio", "goal", "met",
//! ...raw figures}, ...}`. `--only PF1,PF5` runs a subset.
//!
//! - PF1 ([`colocated`]): a call between two components of one job.
//! - PF2 ([`remote_call`]): a call to a component in another job.
//! - PF3 ([`cold_start`]): `amimono run` to the first response.
//! - PF4 ([`ingress`]): HTTP serving against `wasmtime serve`.
//! - PF5 ([`monolith_vs_split`]): the boutique in one process and split.
//! - PF6 ([`instantiate`]): instantiation per request.
//! - soak ([`soak`]): the split hello and boutique apps under steady load
//!   with misbehaving clients alongside (`soak-hello`, `soak-boutique`):
//!   zero errors, flat memory, stable p99. 10 minutes per app, so the full
//!   run leaves it out unless named (`--only soak`); the quick run includes
//!   it (20 s per app). A missed goal fails the bench once everything is
//!   written (the quick run fails only on errors).
//! - FAIR ([`fairness`]): the delay a CPU-bound guest adds to the other
//!   requests of its serving thread.
//! - EMBED ([`embedded`]): a job embedded in an axum server through the
//!   library API against `amimono run` (HTTP requests/s), and native typed
//!   calls beside PF1's colocated and host-forwarded calls.
//!
//! `AMIMONO_BENCH_BASELINE_BIN=<amimono binary>` adds that binary's
//! `amimono run` to PF4, rounds interleaved (a before/after in one run).
//!
//! `amimono-bench --raw-echo-server <port> [--instantiate <app dir>]` is an
//! internal mode: the raw hyper server PF2 compares remote calls against
//! (see [`raw_server`]). `amimono-bench --embed-server <app dir> <job>
//! <label>` is EMBED's embedded server (see [`embedded`]).

mod capabilities;
mod child;
mod closed_loop;
mod cold_start;
mod colocated;
mod embedded;
mod fairness;
mod host_process;
mod ingress;
mod instantiate;
mod monolith_vs_split;
mod open_loop;
mod otlp_sink;
mod raw_server;
mod remote_call;
mod soak;
mod stats;

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == raw_server::FLAG) {
        let port = args
            .get(i + 1)
            .and_then(|p| p.parse::<u16>().ok())
            .with_context(|| {
                format!(
                    "usage: amimono-bench {} <port> [{} <app dir>]",
                    raw_server::FLAG,
                    raw_server::INSTANTIATE_FLAG
                )
            })?;
        let instantiate = args
            .iter()
            .position(|a| a == raw_server::INSTANTIATE_FLAG)
            .and_then(|j| args.get(j + 1))
            .map(Path::new);
        return raw_server::run(port, instantiate);
    }
    if let Some(i) = args.iter().position(|a| a == embedded::SERVER_FLAG) {
        return embedded::serve(&args[i + 1..]);
    }
    let quick = args.iter().any(|a| a == "--quick");
    // `--only PF1,PF2`: run just these measures (for investigating one).
    let only: Option<Vec<String>> = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(|list| {
            list.split(',')
                .map(|m| m.trim().to_ascii_lowercase())
                .collect()
        });
    let selected = |name: &str| {
        only.as_ref()
            .is_none_or(|names| names.iter().any(|n| n == &name.to_ascii_lowercase()))
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    // The soak takes 20 min in full: run only when named, or quick.
    let soak_apps: Vec<soak::SoakApp> = soak::SoakApp::ALL
        .into_iter()
        .filter(|app| match &only {
            Some(names) => names.iter().any(|n| n == "soak" || n == app.key()),
            None => quick,
        })
        .collect();
    let mut failures = Vec::new();
    let mut results = serde_json::Map::new();
    let mut record = |name: &str, table: String, json: serde_json::Value| {
        println!("{table}");
        results.insert(name.to_string(), json);
    };
    if selected("PF1") {
        let pf1 = colocated::run(&root, quick)?;
        record("PF1", pf1.table(), pf1.json());
    }
    if selected("PF2") {
        let pf2 = remote_call::run(&root, quick)?;
        record("PF2", pf2.table(), pf2.json());
    }
    if selected("PF3") {
        let pf3 = cold_start::run(&root, quick)?;
        record("PF3", pf3.table(), pf3.json());
    }
    if selected("PF4") {
        let pf4 = ingress::run(&root, quick)?;
        record("PF4", pf4.table(), pf4.json());
    }
    if selected("PF5") {
        let pf5 = monolith_vs_split::run(&root, quick)?;
        record("PF5", pf5.table(), pf5.json());
    }
    if selected("PF6") {
        let pf6 = instantiate::run(&root, quick)?;
        record("PF6", pf6.table(), pf6.json());
    }
    if selected("FAIR") {
        let fair = fairness::run(&root, quick)?;
        record("FAIR", fair.table(), fair.json());
    }
    if selected("EMBED") {
        let embed = embedded::run(&root, quick)?;
        record("EMBED", embed.table(), embed.json());
    }
    for app in soak_apps {
        let soak = soak::run(&root, quick, app)?;
        failures.extend(soak.failures());
        record(app.key(), soak.table(), soak.json());
    }
    println!("{}", summary(&results));
    let dir = root.join("target/bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("results.json");
    std::fs::write(&path, serde_json::to_string_pretty(&results)?)
        .with_context(|| format!("writing {}", path.display()))?;
    println!("results written to {}", path.display());
    if !failures.is_empty() {
        bail!("goals missed:\n{}", failures.join("\n"));
    }
    Ok(())
}

/// One line per measure: ratio, goal, met.
fn summary(results: &serde_json::Map<String, serde_json::Value>) -> String {
    let mut out =
        String::from("Summary\n\n| measure | ratio | goal | met |\n|---|---:|---:|---|\n");
    for (name, result) in results {
        // A measure with several goals (the soak) words its own row.
        if let (Some(ratio), Some(goal)) = (
            result["summary_ratio"].as_str(),
            result["summary_goal"].as_str(),
        ) {
            let met = if result["met"].as_bool() == Some(true) {
                "yes"
            } else {
                "MISSED"
            };
            out.push_str(&format!("| {name} | {ratio} | {goal} | {met} |\n"));
            continue;
        }
        let number = |key: &str| {
            result[key]
                .as_f64()
                .map_or_else(|| "–".to_string(), |v| format!("{v:.2}"))
        };
        let goal = result["goal"].as_f64().unwrap_or(f64::NAN);
        // PF4 and EMBED are throughputs (higher is better); PF3 and PF6
        // are times.
        let direction = match name.as_str() {
            "PF4" | "PF5" | "EMBED" => "≥",
            _ => "≤",
        };
        let met = match result["met"].as_bool() {
            Some(true) => "yes",
            Some(false) => "MISSED",
            None => "not measured",
        };
        out.push_str(&format!(
            "| {name} | {} | {direction} {goal} | {met} |\n",
            number("ratio")
        ));
    }
    out
}
