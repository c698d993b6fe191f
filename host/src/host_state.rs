//! The data each store carries: the WASI and WASI-HTTP contexts, the
//! resource table (reached through wasmtime's small `*View` traits) and the
//! instance's resource limits.

use crate::engine::EPOCH_TICK;
use crate::limits::Limits;
use crate::manifest::FileGrant;
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime::{Engine, Store, StoreLimits, StoreLimitsBuilder, UpdateDeadline};
use wasmtime_wasi::FsPerms;
use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// What a graph's members that import WASI filesystem or sockets are
/// granted (they must agree: see `job.rs`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WasiGrants {
    /// Preopened directories.
    pub files: Vec<FileGrant>,
    /// Socket addresses that may be connected or bound to.
    pub sockets: Vec<std::net::SocketAddr>,
}

/// How to make the store of one instance of a graph.
#[derive(Debug, Clone, Default)]
pub struct StoreSettings {
    /// Memory and CPU limits.
    pub limits: Limits,
    /// Filesystem and socket grants.
    pub wasi: Arc<WasiGrants>,
}

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
    pub fn new(settings: &StoreSettings) -> HostState {
        let limits = &settings.limits;
        let mut wasi = WasiCtx::builder();
        wasi.inherit_stdout().inherit_stderr();
        for grant in &settings.wasi.files {
            let perms = if grant.writable {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            if let Err(e) = wasi.preopened_dir(&grant.host, &grant.guest, perms) {
                tracing::warn!(dir = %grant.host.display(), error = %e, "cannot open a granted directory");
            }
        }
        if !settings.wasi.sockets.is_empty() {
            let allowed = settings.wasi.sockets.clone();
            wasi.socket_addr_check(move |address, use_| {
                // Granted addresses, plus the implicit bind to an ephemeral
                // port that every connect does.
                let implicit_bind = matches!(use_, SocketAddrUse::TcpBind | SocketAddrUse::UdpBind)
                    && address.port() == 0
                    && address.ip().is_unspecified();
                let ok = implicit_bind || allowed.contains(&address);
                Box::pin(async move { ok })
            });
            wasi.allow_tcp(true)
                .allow_udp(true)
                .allow_ip_name_lookup(false);
        }
        HostState {
            wasi: wasi.build(),
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
pub fn new_store(engine: &Engine, settings: &StoreSettings) -> Store<HostState> {
    let limits = &settings.limits;
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
