//! The data each store carries: the WASI and WASI-HTTP contexts, the
//! resource table (reached through wasmtime's small `*View` traits) and the
//! instance's resource limits.

use crate::engine::EPOCH_TICK;
use crate::limits::Limits;
use wasmtime::component::ResourceTable;
use wasmtime::{Engine, Store, StoreLimits, StoreLimitsBuilder, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Per-store state: one per instance of a job graph.
pub struct HostState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    limits: StoreLimits,
}

impl HostState {
    /// Fresh state for one instance of a graph. Guests get no environment,
    /// arguments or files; their stdout and stderr go to the host's; each
    /// linear memory may grow to `limits.memory_bytes`.
    pub fn new(limits: &Limits) -> HostState {
        HostState {
            wasi: WasiCtx::builder().inherit_stdout().inherit_stderr().build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(limits.memory_bytes)
                .build(),
        }
    }
}

impl HostState {
    /// The store's resource table.
    pub fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: Default::default(),
        }
    }
}

/// A store for one instance of a graph, with `limits`: its memories are
/// capped, and the guest yields to the async runtime at every epoch tick
/// (see [`crate::engine`]), so deadlines can stop it, and traps once it has
/// run for `limits.cpu_time` (ticks are counted only while it runs).
pub fn new_store(engine: &Engine, limits: &Limits) -> Store<HostState> {
    let mut store = Store::new(engine, HostState::new(limits));
    store.limiter(|state| &mut state.limits);
    store.set_epoch_deadline(1);
    // Marks the store async-only, then counts ticks.
    store.epoch_deadline_async_yield_and_update(1);
    // Callbacks come once per tick while the guest runs; a gap longer than
    // two ticks means it was waiting (a host call), which is not charged.
    let budget = limits.cpu_time;
    let mut ran = std::time::Duration::ZERO;
    let mut last: Option<std::time::Instant> = None;
    store.epoch_deadline_callback(move |_| {
        let now = std::time::Instant::now();
        ran += match last {
            Some(last) => (now - last).min(2 * EPOCH_TICK),
            None => EPOCH_TICK,
        };
        last = Some(now);
        if ran > budget {
            return Err(wasmtime::Error::from_anyhow(anyhow::anyhow!(
                "the instance ran for more than its CPU time limit of {} ms",
                budget.as_millis()
            )));
        }
        Ok(UpdateDeadline::Yield(1))
    });
    store
}
