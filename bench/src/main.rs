//! Amimono's benchmarks. `cargo xtask bench` runs them and prints a table;
//! `--quick` runs short versions (for CI, so the suite cannot rot). Every
//! ratio is measured side by side in one run, rounds interleaved, medians
//! reported: this machine is noisy. Results also go to
//! `target/bench/results.json`.
//!
//! `amimono-bench --raw-echo-server <port> [--instantiate <app dir>]` is an
//! internal mode: the raw hyper server PF2 compares remote calls against
//! (see [`raw_server`]).

mod child;
mod colocated;
mod experiment;
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
            .with_context(|| format!("usage: amimono-bench {} <port>", raw_server::FLAG))?;
        let instantiate = args
            .iter()
            .position(|a| a == raw_server::INSTANTIATE_FLAG)
            .and_then(|j| args.get(j + 1))
            .map(Path::new);
        return raw_server::run(port, instantiate);
    }
    let quick = args.iter().any(|a| a == "--quick");
    if std::env::var_os("AMIMONO_BENCH_EXPERIMENT").is_some() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        return experiment::run(&root);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let pf1 = colocated::run(&root, quick)?;
    println!("{}", pf1.table());
    let instantiation = instantiate::run(&root, quick)?;
    println!("{}", instantiation.table());
    let pf2 = remote_call::run(&root, quick)?;
    println!("{}", pf2.table());
    let http = http_load::run(&root, quick)?;
    println!("{}", http.table());
    let results = serde_json::json!({
        "PF1": pf1.json(),
        "PF2": pf2.json(),
        "instantiation": instantiation.json(),
        "http": http.json(),
    });
    let dir = root.join("target/bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("results.json");
    std::fs::write(&path, serde_json::to_string_pretty(&results)?)
        .with_context(|| format!("writing {}", path.display()))?;
    println!("results written to {}", path.display());
    Ok(())
}
