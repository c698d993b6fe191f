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
use amimono::app::App;
use amimono::capabilities::CapabilityContext;
use amimono::capabilities::config::SecretSource;
use amimono::capabilities::keyvalue::BackendChoice;
use amimono::engine::{EngineUse, new_engine};
use amimono::host_state::{StoreSettings, new_store};
use amimono::job::{LinkContext, PreparedGraph, compose_graph, prepare_graph};
use amimono::placement::{LOCAL_JOB, Placement};
use amimono::wasmtime_error::IntoAnyhow;
use anyhow::Result;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
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
        let app = App::load(&root.join(dir))?;
        let engines = [
            new_engine(EngineUse::Serving)?,
            new_engine(EngineUse::OneShot)?,
        ];
        let prepared = engines
            .iter()
            .map(|engine| prepare(&runtime, engine, &app))
            .collect::<Result<Vec<_>>>()?;
        let mut samples = [Vec::new(), Vec::new()];
        for _ in 0..rounds {
            for (i, graph) in prepared.iter().enumerate() {
                samples[i].push(time_instantiations(&runtime, graph, per_round)?);
            }
        }
        graphs.push(GraphFigures {
            name,
            members: prepared[0].plan.members.len(),
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

/// The frontend's `_local` graph of `app`, pre-instantiated on `engine`
/// with the manifest's grants and an in-memory key-value backend.
fn prepare(
    runtime: &tokio::runtime::Runtime,
    engine: &wasmtime::Engine,
    app: &App,
) -> Result<PreparedGraph> {
    let placement = Placement::local(app);
    let composed = compose_graph(app, &placement, "frontend")?;
    let keyvalue = runtime.block_on(BackendChoice::Memory.open(app.name()))?;
    let facts = Arc::new(amimono::run::runtime_facts(
        app,
        LOCAL_JOB,
        None,
        &BTreeMap::new(),
    ));
    let capabilities = Arc::new(CapabilityContext::new(
        app,
        facts,
        app.components.keys(),
        &SecretSource::default(),
        Some(keyvalue),
    )?);
    prepare_graph(engine, app, &LinkContext::local(capabilities), &composed)
}

/// µs per instantiation, over `count` of them.
fn time_instantiations(
    runtime: &tokio::runtime::Runtime,
    graph: &PreparedGraph,
    count: usize,
) -> Result<f64> {
    let started = Instant::now();
    for _ in 0..count {
        let mut store = new_store(graph.pre.engine(), &StoreSettings::default());
        runtime
            .block_on(graph.pre.instantiate_async(&mut store))
            .anyhow()?;
    }
    Ok(started.elapsed().as_secs_f64() * 1e6 / count as f64)
}
