//! The data each store carries: the WASI and WASI-HTTP contexts and the
//! resource table, reached through wasmtime's small `*View` traits.

use wasmtime::component::ResourceTable;
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Per-store state: one per instance of a job graph.
pub struct HostState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
}

impl HostState {
    /// Fresh state for one instance of a graph. Guests get no environment,
    /// arguments or files; their stdout and stderr go to the host's.
    pub fn new() -> HostState {
        HostState {
            wasi: WasiCtx::builder().inherit_stdout().inherit_stderr().build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
        }
    }
}

impl Default for HostState {
    fn default() -> Self {
        HostState::new()
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

/// A store for one instance of a graph: fresh state, and a guest that yields
/// to the async runtime at every epoch tick (see [`crate::engine`]), so
/// deadlines and timeouts can stop it.
pub fn new_store(engine: &Engine) -> Store<HostState> {
    let mut store = Store::new(engine, HostState::new());
    store.set_epoch_deadline(1);
    store.epoch_deadline_async_yield_and_update(1);
    store
}
