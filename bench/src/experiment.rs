//! TEMPORARY experiment (not to be kept): callee steps with pooling variants.

use crate::stats::median;
use amimono::app::App;
use amimono::host_state::new_store;
use amimono::job::{LinkContext, compose_graph, prepare_graph};
use amimono::placement::Placement;
use amimono::runtime_interface::RuntimeFacts;
use amimono::wasmtime_error::IntoAnyhow;
use anyhow::{Context, Result};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use wasmtime::component::Val;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

pub fn engine(variant: u32) -> Result<Engine> {
    let n = 1000u32;
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(n)
        .total_core_instances(n * 16)
        .total_memories(n * 8)
        .total_tables(n * 16)
        .total_stacks(n)
        .max_core_instances_per_component(256)
        .max_memories_per_component(64)
        .max_tables_per_component(64)
        .max_component_instance_size(4 << 20)
        .max_core_instance_size(4 << 20)
        .max_memory_size(1 << 30);
    if variant & 1 != 0 {
        pool.linear_memory_keep_resident(1 << 20)
            .table_keep_resident(64 << 10);
    }
    if variant & 2 != 0 {
        pool.async_stack_keep_resident(128 << 10);
    }
    if variant & 4 != 0 {
        pool.pagemap_scan(Enabled::Auto);
    }
    if variant & 8 != 0 {
        pool.decommit_batch_size(32);
    }
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config).anyhow()
}

pub fn run(root: &Path) -> Result<()> {
    let app = App::load(&root.join("bench/app-split"))?;
    let placement = Placement::for_job(&app, "callees")?;
    let composed = compose_graph(&app, &placement, "callee")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let variants = [0u32, 5, 7, 8, 15, 0];
    let params = [Val::String("x".repeat(1024))];
    let mut samples =
        vec![[Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new()]; variants.len()];
    for (i, v) in variants.iter().enumerate() {
        let e = engine(*v)?;
        let g = prepare_graph(
            &e,
            &app,
            &LinkContext::local(Arc::new(RuntimeFacts::default())),
            &composed,
        )?;
        let iface = g
            .component
            .get_export_index(None, "amimono-bench:calls/target@0.1.0")
            .context("x")?;
        let echo = g
            .component
            .get_export_index(Some(&iface), "echo")
            .context("y")?;
        for k in 0..4000 {
            let t0 = Instant::now();
            let mut store = new_store(g.pre.engine());
            let t1 = Instant::now();
            let inst = rt.block_on(g.pre.instantiate_async(&mut store)).anyhow()?;
            let t2 = Instant::now();
            let f = inst.get_func(&mut store, echo).context("f")?;
            let mut r = [Val::Bool(false)];
            rt.block_on(f.call_async(&mut store, &params, &mut r))
                .anyhow()?;
            let t3 = Instant::now();
            drop(store);
            let t4 = Instant::now();
            if k < 500 {
                continue;
            }
            let us = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e6;
            samples[i][0].push(us(t0, t1));
            samples[i][1].push(us(t1, t2));
            samples[i][2].push(us(t2, t3));
            samples[i][3].push(us(t3, t4));
            samples[i][4].push(us(t0, t4));
        }
        // Reuse: one instance, many calls.
        if *v == 0 && i == 0 {
            let mut store = new_store(g.pre.engine());
            let inst = rt.block_on(g.pre.instantiate_async(&mut store)).anyhow()?;
            let f = inst.get_func(&mut store, echo).context("f")?;
            let mut xs = Vec::new();
            for _ in 0..4000 {
                let t = Instant::now();
                let mut r = [Val::Bool(false)];
                rt.block_on(f.call_async(&mut store, &params, &mut r))
                    .anyhow()?;
                xs.push(t.elapsed().as_secs_f64() * 1e6);
            }
            println!("reused instance, call only: {:.2}", median(&xs));
        }
    }
    println!("| variant | store | instantiate | call | drop | total | total mean | total p99 |");
    for (i, v) in variants.iter().enumerate() {
        println!(
            "| {v} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
            median(&samples[i][0]),
            median(&samples[i][1]),
            median(&samples[i][2]),
            median(&samples[i][3]),
            median(&samples[i][4]),
            samples[i][4].iter().sum::<f64>() / samples[i][4].len() as f64,
            crate::stats::percentile(&samples[i][4], 99.0)
        );
    }
    Ok(())
}
