//! The data each store carries: the WASI and WASI-HTTP contexts, the
//! resource table (reached through wasmtime's small `*View` traits) and the
//! instance's resource limits: each linear memory capped, and all of them
//! reserved against the job's [`MemoryBudget`].

use crate::capabilities::GraphGrants;
use crate::engine::EPOCH_TICK;
use crate::limits::Limits;
use crate::observe::metrics::ComponentMetrics;
use crate::observe::traces::{PropagatingHooks, TraceContext};
use crate::serve::budget::{MemoryBudget, Reservation};
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime::{Engine, ResourceLimiter, Store, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// How to make the store of one instance of a graph.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// Memory and CPU limits.
    pub limits: Limits,
    /// Filesystem and socket grants of the graph.
    pub wasi: Arc<GraphGrants>,
    /// The job's memory budget, which every linear memory is reserved against.
    pub budget: Arc<MemoryBudget>,
    /// Where the component's instances are counted.
    pub metrics: ComponentMetrics,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            limits: Limits::default(),
            wasi: Arc::default(),
            budget: MemoryBudget::unlimited(),
            metrics: ComponentMetrics::detached(),
        }
    }
}

/// Caps each linear memory at the instance's limit and reserves every
/// byte of growth against the job's budget (given back with the store).
pub struct InstanceLimiter {
    memory_bytes: usize,
    reservation: Reservation,
    refused_by_budget: bool,
    refusals: prometheus::IntCounter,
}

impl ResourceLimiter for InstanceLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.refusals.inc();
            return Ok(false);
        }
        let more = u64::try_from(desired.saturating_sub(current)).unwrap_or(u64::MAX);
        if self.reservation.grow(more) {
            return Ok(true);
        }
        self.refusals.inc();
        if !self.refused_by_budget {
            self.refused_by_budget = true;
            tracing::warn!(
                bytes = desired,
                "memory.grow refused: the job's memory budget (memory_budget_mib) is used up"
            );
        }
        Ok(false)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

/// Per-store state: one per instance of a job graph.
pub struct HostState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    limits: InstanceLimiter,
    /// In a tapped graph's store: the instance of each colocated callee,
    /// made at its first call and kept for this instance's life, as the
    /// composed graph keeps it ([`crate::observe::tapped`]).
    pub(crate) tapped_callees: std::collections::HashMap<String, TappedCallee>,
    /// The trace of the work the instance does now, which its outgoing
    /// HTTP requests and remote calls carry.
    hooks: PropagatingHooks,
}

/// A callee's instance kept by a tapped caller: its store and instance.
pub(crate) type TappedCallee = (Store<HostState>, wasmtime::component::Instance);

impl HostState {
    /// Fresh state for one instance of a graph. Guests get no environment
    /// or arguments here (those are per member, `capabilities::environment`),
    /// the graph's granted directories and sockets
    /// ([`crate::capabilities::configure_instance`]); each linear memory may
    /// grow to `limits.memory_bytes`.
    pub fn new(settings: &StoreSettings) -> HostState {
        let limits = &settings.limits;
        let mut wasi = WasiCtx::builder();
        wasi.inherit_stdout().inherit_stderr();
        crate::capabilities::configure_instance(&settings.wasi, &mut wasi);
        HostState {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            limits: InstanceLimiter {
                memory_bytes: limits.memory_bytes,
                reservation: settings.budget.reservation(),
                refused_by_budget: false,
                refusals: settings.metrics.memory_limit_refusals.clone(),
            },
            tapped_callees: std::collections::HashMap::new(),
            hooks: PropagatingHooks::default(),
        }
    }
}

impl HostState {
    /// The store's resource table.
    pub fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }

    /// The trace of the request or call the instance serves now.
    pub fn trace(&self) -> &TraceContext {
        &self.hooks.trace
    }

    /// Sets the trace of the request or call the instance serves now.
    pub fn set_trace(&mut self, trace: TraceContext) {
        self.hooks.trace = trace;
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
            hooks: &mut self.hooks,
        }
    }
}

/// Most scheduling rounds a running guest gives its thread at one epoch tick.
const MAX_YIELD_ROUNDS: usize = 64;
/// A round this short means nothing else wanted the thread.
const QUIET_ROUND: std::time::Duration = std::time::Duration::from_micros(50);

/// What a running guest does at each epoch tick: it gives its serving thread
/// scheduling rounds (tokio's `yield_now`, which polls for I/O and runs
/// everything else that is ready first) until a round comes back at once —
/// nothing else wants the thread — or [`MAX_YIELD_ROUNDS`] have passed. A
/// request reaching a busy thread needs several rounds (its connection, its
/// guest task, each chunk of its answer); with one round per tick each of
/// them would wait a tick behind the spinning guest. Alone on its thread, a
/// guest pays one I/O poll (~2 µs) per 10 ms tick.
async fn give_way() {
    for _ in 0..MAX_YIELD_ROUNDS {
        let started = std::time::Instant::now();
        tokio::task::yield_now().await;
        if started.elapsed() < QUIET_ROUND {
            break;
        }
    }
}

/// A store for one instance of a graph, with `limits`: its memories are
/// capped, and the guest yields to the async runtime at every epoch tick
/// (see [`crate::engine`]), so deadlines can stop it, and traps once it has
/// run for `limits.cpu_time` (ticks are counted only while it runs).
///
/// The yield is tokio's own `yield_now` (see [`give_way`]), not a plain
/// self-wake: the single-threaded serving runtime then polls for I/O
/// and runs everything else that is ready before it resumes the guest, so a
/// CPU-bound guest delays the other requests of its thread by at most one
/// tick. A plain wake-up would look like a busy task, and the runtime polls
/// for I/O only every 61 such polls (0.6 s of spinning).
pub fn new_store(engine: &Engine, settings: &StoreSettings) -> Store<HostState> {
    let limits = &settings.limits;
    let metrics = &settings.metrics;
    metrics.instances_created.inc();
    let interruptions = metrics.epoch_interruptions.clone();
    let cpu_kills = metrics.cpu_limit_kills.clone();
    let mut store = Store::new(engine, HostState::new(settings));
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
        interruptions.inc();
        let now = std::time::Instant::now();
        ran += match last {
            Some(last) => (now - last).min(2 * EPOCH_TICK),
            None => EPOCH_TICK,
        };
        last = Some(now);
        if ran > budget {
            cpu_kills.inc();
            return Err(wasmtime::Error::from_anyhow(anyhow::anyhow!(
                "the instance ran for more than its CPU time limit of {} ms",
                budget.as_millis()
            )));
        }
        Ok(UpdateDeadline::YieldCustom(1, Box::pin(give_way())))
    });
    store
}
