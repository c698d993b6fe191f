//! PF6, instantiation per request: µs to create a store and instantiate an
//! HTTP entry's whole graph, as the host does for every request, with the
//! pooling allocator (what `amimono run` uses) and with on-demand allocation,
//! side by side, for two graphs:
//! - the hello frontend's (frontend → greeter → phrasebook: 3 components);
//! - the boutique frontend's under `_local` (all ten services in one graph).
//!
//! ratio = µs for the 3-component graph with the pooling allocator;
//! goal ≤ 20. The full boutique graph is reported beside it.

use crate::stats::median;
use amimono::internals::IntoAnyhow;
use amimono::internals::{EngineUse, new_engine};
use amimono::{Application, Job};
use anyhow::Result;
use std::path::Path;
use std::time::Instant;

/// Goal: µs per instantiation of the 3-component hello graph (pooling).
const GOAL_US: f64 = 20.0;

/// One graph's medians in µs per instantiation.
struct GraphFigures {
    name: &'static str,
    members: usize,
    pooling_us: f64,
    on_demand_us: f64,
}

/// PF6's result.
pub struct Pf6 {
    graphs: Vec<GraphFigures>,
    per_round: usize,
    rounds: usize,
}

impl Pf6 {
    fn ratio(&self) -> f64 {
        self.graphs.first().map_or(f64::NAN, |g| g.pooling_us)
    }

    /// The table, as markdown.
    pub fn table(&self) -> String {
        let mut out = format!(
            "PF6 instantiation per request: store + whole graph, µs, median of {} rounds of {}\n\n\
             | graph | components | pooling (amimono run) | on-demand |\n|---|---:|---:|---:|\n",
            self.rounds, self.per_round
        );
        for g in &self.graphs {
            out.push_str(&format!(
                "| {} | {} | {:.1} | {:.1} |\n",
                g.name, g.members, g.pooling_us, g.on_demand_us
            ));
        }
        let ratio = self.ratio();
        out.push_str(&format!(
            "\nratio (µs, 3-component graph, pooling): {ratio:.1} (goal ≤ {GOAL_US}: {})\n",
            if ratio <= GOAL_US { "met" } else { "MISSED" }
        ));
        out
    }

    /// The JSON entry for `results.json`.
    pub fn json(&self) -> serde_json::Value {
        let ratio = self.ratio();
        let graphs: serde_json::Map<String, serde_json::Value> = self
            .graphs
            .iter()
            .map(|g| {
                (
                    g.name.to_string(),
                    serde_json::json!({
                        "members": g.members,
                        "pooling_us": g.pooling_us,
                        "on_demand_us": g.on_demand_us,
                    }),
                )
            })
            .collect();
        serde_json::json!({
            "ratio": ratio,
            "goal": GOAL_US,
            "met": ratio <= GOAL_US,
            "graphs": graphs,
            "rounds": self.rounds,
            "per_round": self.per_round,
        })
    }
}

/// Runs PF6.
pub fn run(root: &Path, quick: bool) -> Result<Pf6> {
    let (rounds, per_round) = if quick { (3, 200) } else { (7, 2000) };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut graphs = Vec::new();
    for (name, dir) in [
        ("hello frontend", "examples/hello"),
        ("boutique frontend (_local)", "examples/boutique"),
    ] {
        let engines = [
            new_engine(EngineUse::Serving)?,
            new_engine(EngineUse::OneShot)?,
        ];
        let prepared = engines
            .iter()
            .map(|engine| prepare(&runtime, engine, root, dir))
            .collect::<Result<Vec<_>>>()?;
        let mut samples = [Vec::new(), Vec::new()];
        for _ in 0..rounds {
            for (i, graph) in prepared.iter().enumerate() {
                samples[i].push(time_instantiations(&runtime, graph, per_round)?);
            }
        }
        graphs.push(GraphFigures {
            name,
            members: prepared[0].graph_components("frontend")?.len(),
            pooling_us: median(&samples[0]),
            on_demand_us: median(&samples[1]),
        });
    }
    Ok(Pf6 {
        graphs,
        per_round,
        rounds,
    })
}

/// The `_local` job of the app in `dir` on `engine`, prepared through the
/// library API, with its data under `target/bench`.
fn prepare(
    runtime: &tokio::runtime::Runtime,
    engine: &wasmtime::Engine,
    root: &Path,
    dir: &str,
) -> Result<Job> {
    let application = Application::open(root.join(dir))?;
    let data = root.join("target/bench/pf6-data").join(application.name());
    runtime.block_on(
        application
            .local()
            .engine(engine.clone())
            .data_dir(data)
            .lazy(true)
            .prepare(),
    )
}

/// µs per instantiation, over `count` of them.
fn time_instantiations(runtime: &tokio::runtime::Runtime, job: &Job, count: usize) -> Result<f64> {
    let pre = job.instance_pre("frontend")?;
    let started = Instant::now();
    for _ in 0..count {
        let mut store = job.new_store("frontend")?;
        runtime
            .block_on(pre.instantiate_async(&mut store))
            .anyhow()?;
    }
    Ok(started.elapsed().as_secs_f64() * 1e6 / count as f64)
}
