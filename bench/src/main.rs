//! Amimono's benchmarks. `cargo xtask bench` runs them and prints a table;
//! `--quick` runs short versions (for CI, so the suite cannot rot). Every
//! ratio is measured side by side in one run, rounds interleaved, medians
//! reported: this machine is noisy. Results also go to
//! `target/bench/results.json`. `--only PF1,PF2,instantiation,http` runs a
//! subset.
//!
//! `amimono-bench --raw-echo-server <port> [--instantiate <app dir>]` is an
//! internal mode: the raw hyper server PF2 compares remote calls against
//! (see [`raw_server`]).

mod child;
mod colocated;
mod http_load;
mod instantiate;
mod raw_server;
mod remote_call;
mod stats;

use anyhow::{Context, Result};
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
    let mut results = serde_json::Map::new();
    if selected("PF1") {
        let pf1 = colocated::run(&root, quick)?;
        println!("{}", pf1.table());
        results.insert("PF1".into(), pf1.json());
    }
    if selected("instantiation") {
        let instantiation = instantiate::run(&root, quick)?;
        println!("{}", instantiation.table());
        results.insert("instantiation".into(), instantiation.json());
    }
    if selected("PF2") {
        let pf2 = remote_call::run(&root, quick)?;
        println!("{}", pf2.table());
        results.insert("PF2".into(), pf2.json());
    }
    if selected("http") {
        let http = http_load::run(&root, quick)?;
        println!("{}", http.table());
        results.insert("http".into(), http.json());
    }
    let dir = root.join("target/bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("results.json");
    std::fs::write(&path, serde_json::to_string_pretty(&results)?)
        .with_context(|| format!("writing {}", path.display()))?;
    println!("results written to {}", path.display());
    Ok(())
}
