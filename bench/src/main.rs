//! Amimono's benchmarks. `cargo xtask bench` runs them and prints a table;
//! `--quick` runs short versions (for CI, so the suite cannot rot). Every
//! ratio is measured side by side in one run, rounds interleaved, medians
//! reported: this machine is noisy. Results also go to
//! `target/bench/results.json`.

mod colocated;
mod http_load;
mod instantiate;
mod stats;

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

fn main() -> Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let pf1 = colocated::run(&root, quick)?;
    println!("{}", pf1.table());
    let instantiation = instantiate::run(&root, quick)?;
    println!("{}", instantiation.table());
    let http = http_load::run(&root, quick)?;
    println!("{}", http.table());
    let results = serde_json::json!({
        "PF1": pf1.json(),
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
