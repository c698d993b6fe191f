//! The wasmtime engine and compilation. Serving engines use the pooling
//! allocator (instantiation in ~15 µs); one-shot engines (`amimono call`) use
//! on-demand allocation so they start without reserving the pool. Compiled
//! graphs are cached on disk by content hash (see [`crate::artifact_cache`]).

use crate::wasmtime_error::IntoAnyhow;
use anyhow::{Context, Result};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ProfilingStrategy,
};

/// Environment variable that, set to `perfmap`, makes the engine write
/// `/tmp/perf-<pid>.map` so `perf report` names the guests' functions.
pub const PROFILE_ENV: &str = "AMIMONO_PROFILE";

/// What the engine is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineUse {
    /// A long-running host serving many requests concurrently.
    Serving,
    /// A single call, then exit.
    OneShot,
}

/// Bytes of each linear memory kept resident between instances (with
/// PAGEMAP_SCAN only the dirtied pages are reset).
const KEEP_RESIDENT: usize = 1 << 20;

/// Instances of a job graph alive at once in one process, at most.
pub const MAX_CONCURRENT_INSTANCES: u32 = 1000;

/// How often the engine's epoch advances: a running guest yields to the async
/// runtime this often, so a deadline can stop it.
pub const EPOCH_TICK: std::time::Duration = std::time::Duration::from_millis(10);

/// Builds the engine for `use_`, with epoch interruption ticking every
/// [`EPOCH_TICK`] on a background thread.
pub fn new_engine(use_: EngineUse) -> Result<Engine> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    if std::env::var(PROFILE_ENV).is_ok_and(|v| v == "perfmap") {
        config.profiler(ProfilingStrategy::PerfMap);
    }
    if use_ == EngineUse::Serving {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(MAX_CONCURRENT_INSTANCES)
            .total_core_instances(MAX_CONCURRENT_INSTANCES * 16)
            .total_memories(MAX_CONCURRENT_INSTANCES * 8)
            .total_tables(MAX_CONCURRENT_INSTANCES * 16)
            .total_stacks(MAX_CONCURRENT_INSTANCES)
            .max_core_instances_per_component(256)
            .max_memories_per_component(64)
            .max_tables_per_component(64)
            .max_component_instance_size(4 << 20)
            .max_core_instance_size(4 << 20)
            .max_memory_size(1 << 30);
        // Most of a fresh instance's cost is touching new pages and giving
        // them back afterwards. With the kernel's PAGEMAP_SCAN (Linux 6.7+),
        // the pool keeps a slot's first pages resident and resets only the
        // ones the instance dirtied; without it, keeping pages resident
        // means clearing them all, which is slower than not keeping them.
        if PoolingAllocationConfig::is_pagemap_scan_available() {
            pool.pagemap_scan(Enabled::Yes)
                .linear_memory_keep_resident(KEEP_RESIDENT)
                .table_keep_resident(64 << 10);
        }
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    let engine = Engine::new(&config)
        .anyhow()
        .context("creating the wasmtime engine")?;
    let ticking = engine.weak();
    std::thread::Builder::new()
        .name("amimono-epoch".into())
        .spawn(move || {
            while let Some(engine) = ticking.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .context("starting the epoch thread")?;
    Ok(engine)
}
