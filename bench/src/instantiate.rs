//! Instantiation per request: µs to create a store and instantiate the hello
//! frontend's graph (frontend → greeter → phrasebook, three components), as
//! the host does for every HTTP request, with the pooling allocator (what
//! `amimono run` uses) and with on-demand allocation, side by side.

use crate::stats::median;
use amimono::app::App;
use amimono::capabilities::CapabilityContext;
use amimono::engine::{EngineUse, new_engine};
use amimono::job::{LinkContext, compose_graph, prepare_graph};
use amimono::placement::Placement;
use amimono::wasmtime_error::IntoAnyhow;
use anyhow::Result;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// Medians in µs per instantiation.
pub struct Instantiation {
    pooling_us: f64,
    on_demand_us: f64,
    members: usize,
    per_round: usize,
}

impl Instantiation {
    /// The table, as markdown.
    pub fn table(&self) -> String {
        format!(
            "Instantiation of the hello frontend graph ({} components), µs per request, median of rounds of {}\n\n\
             | allocator | µs |\n|---|---:|\n| pooling (amimono run) | {:.1} |\n| on-demand | {:.1} |\n",
            self.members, self.per_round, self.pooling_us, self.on_demand_us
        )
    }

    /// The JSON entry for `results.json`.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "pooling_us": self.pooling_us,
            "on_demand_us": self.on_demand_us,
            "members": self.members,
        })
    }
}

/// Runs the measure.
pub fn run(root: &Path, quick: bool) -> Result<Instantiation> {
    let (rounds, per_round) = if quick { (3, 200) } else { (7, 2000) };
    let app = App::load(&root.join("examples/hello"))?;
    let placement = Placement::local(&app);
    let composed = compose_graph(&app, &placement, "frontend")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // The frontend imports key-value: give it an in-memory backend.
    let keyvalue = runtime
        .block_on(amimono::capabilities::keyvalue::BackendChoice::Memory.open(app.name()))?;
    let capabilities = Arc::new(CapabilityContext {
        keyvalue: Some(keyvalue),
        ..CapabilityContext::default()
    });
    let mut graphs = Vec::new();
    for use_ in [EngineUse::Serving, EngineUse::OneShot] {
        let engine = new_engine(use_)?;
        graphs.push(prepare_graph(
            &engine,
            &app,
            &LinkContext::local(capabilities.clone()),
            &composed,
        )?);
    }
    let mut samples = [Vec::new(), Vec::new()];
    for _ in 0..rounds {
        for (i, graph) in graphs.iter().enumerate() {
            let started = Instant::now();
            for _ in 0..per_round {
                let mut store = amimono::host_state::new_store(
                    graph.pre.engine(),
                    &amimono::host_state::StoreSettings::default(),
                );
                runtime
                    .block_on(graph.pre.instantiate_async(&mut store))
                    .anyhow()?;
            }
            samples[i].push(started.elapsed().as_secs_f64() * 1e6 / per_round as f64);
        }
    }
    Ok(Instantiation {
        pooling_us: median(&samples[0]),
        on_demand_us: median(&samples[1]),
        members: composed.plan.members.len(),
        per_round,
    })
}
