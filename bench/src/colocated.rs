//! PF1, the colocated call: ns per call of `add(u32,u32)` and a 1 KiB string
//! echo between two components, four ways side by side:
//! - no boundary: the same loop inside one component (the floor);
//! - amimono: the two components in one job, composed and run by the host
//!   (`amimono::internals::prepare_graph`, async store, pooling allocator);
//! - composed pair: the same two components composed with wac-graph here,
//!   outside the host, run in a plain sync store;
//! - host-forwarded: the two instantiated separately, the caller's import
//!   defined by typed host functions calling into the callee (sync store);
//! - composed pair with epoch interruption: the composed pair again, compiled
//!   with the check every amimono guest carries at each function entry and
//!   loop header (what makes deadlines and CPU limits possible). It tells
//!   how much of amimono's gap to the plain pair is preemptibility.
//!
//! ratio = amimono / composed pair, the worse of add and echo; goal ≤ 1.2.

use crate::stats::median;
use amimono::internals::App;
use amimono::internals::HostState;
use amimono::internals::IntoAnyhow;
use amimono::internals::Placement;
use amimono::internals::RuntimeFacts;
use amimono::internals::{EngineUse, new_engine};
use amimono::internals::{LinkContext, prepare_graph};
use anyhow::{Context, Result};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use wasmtime::component::{Component, Instance, Linker, ResourceTable, TypedFunc};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::{WasiCtxView, WasiView};

const DRIVER: &str = "amimono-bench:calls/driver@0.1.0";
const TARGET: &str = "amimono-bench:calls/target@0.1.0";
const GOAL: f64 = 1.2;

/// The ways a call can cross, in table order.
const WAYS: [&str; 5] = [
    "no boundary (one component, the floor)",
    "amimono (colocated in one job)",
    "composed pair (wac-graph, outside the host)",
    "host-forwarded (typed host functions, sync store)",
    "composed pair with epoch interruption (as amimono compiles)",
];

/// PF1 results: ns per call for each way.
pub struct Pf1 {
    add_ns: [f64; 5],
    echo_ns: [f64; 5],
    rounds: usize,
    add_calls: u32,
    echo_calls: u32,
    /// ns per call through a tap (a request sampled for observation).
    tapped_add_ns: f64,
    tapped_echo_ns: f64,
    tapped_calls: u32,
}

/// The sampling ratio PF1 reports the observed cost at.
const SAMPLE_RATIO: f64 = 0.01;

impl Pf1 {
    fn ratio(&self) -> (f64, f64) {
        (
            self.add_ns[1] / self.add_ns[2],
            self.echo_ns[1] / self.echo_ns[2],
        )
    }

    /// The table, as markdown.
    pub fn table(&self) -> String {
        let mut out = format!(
            "PF1 colocated call: ns per call, median of {} rounds ({} add calls, {} echo calls per round)\n\n",
            self.rounds, self.add_calls, self.echo_calls
        );
        out.push_str(
            "| how the call crosses | add(u32,u32) | echo 1 KiB string |\n|---|---:|---:|\n",
        );
        for (i, way) in WAYS.iter().enumerate() {
            out.push_str(&format!(
                "| {way} | {:.2} | {:.1} |\n",
                self.add_ns[i], self.echo_ns[i]
            ));
        }
        let (add, echo) = self.ratio();
        let worst = add.max(echo);
        out.push_str(&format!(
            "\nratio amimono / composed pair: add {add:.2}, echo {echo:.2}; worse {worst:.2} (goal ≤ {GOAL}) {}\n",
            if worst <= GOAL { "MET" } else { "MISSED" }
        ));
        let (observed_add, observed_echo) = self.observed();
        out.push_str(&format!(
            "\nobservation (colocated calls measured through tapped graphs, {} calls per round): \
             a tapped call costs add {:.0} ns, echo {:.0} ns; with AMIMONO_LOCAL_SAMPLE_RATIO={SAMPLE_RATIO} \
             a call costs on average add {observed_add:.1} ns ({:.1}× the unobserved call), echo {observed_echo:.1} ns ({:.1}×). \
             Unsampled requests run the same composed graph as with observation off (the amimono row).\n",
            self.tapped_calls,
            self.tapped_add_ns,
            self.tapped_echo_ns,
            observed_add / self.add_ns[1],
            observed_echo / self.echo_ns[1],
        ));
        out
    }

    /// The average cost of a call with [`SAMPLE_RATIO`] of requests tapped.
    fn observed(&self) -> (f64, f64) {
        let mix = |plain: f64, tapped: f64| (1.0 - SAMPLE_RATIO) * plain + SAMPLE_RATIO * tapped;
        (
            mix(self.add_ns[1], self.tapped_add_ns),
            mix(self.echo_ns[1], self.tapped_echo_ns),
        )
    }

    /// The JSON entry for `results.json`.
    pub fn json(&self) -> serde_json::Value {
        let (add, echo) = self.ratio();
        let worst = add.max(echo);
        serde_json::json!({
            "ratio": worst,
            "goal": GOAL,
            "met": worst <= GOAL,
            "add_ns": { "floor": self.add_ns[0], "amimono": self.add_ns[1], "composed": self.add_ns[2], "host_forwarded": self.add_ns[3], "composed_with_epochs": self.add_ns[4] },
            "echo_ns": { "floor": self.echo_ns[0], "amimono": self.echo_ns[1], "composed": self.echo_ns[2], "host_forwarded": self.echo_ns[3], "composed_with_epochs": self.echo_ns[4] },
            "tapped_ns": { "add": self.tapped_add_ns, "echo": self.tapped_echo_ns, "calls": self.tapped_calls },
            "observed_ns": { "sample_ratio": SAMPLE_RATIO, "add": self.observed().0, "echo": self.observed().1 },
            "rounds": self.rounds,
            "add_calls": self.add_calls,
            "echo_calls": self.echo_calls,
        })
    }
}

/// A way of running the driver's loops: `n` calls of the callee's `add` or
/// `echo`, made from inside the caller component.
pub(crate) trait Driver {
    fn run_add(&mut self, n: u32) -> Result<u32>;
    fn run_echo(&mut self, n: u32, s: &str) -> Result<u32>;
}

/// Runs PF1.
pub fn run(root: &Path, quick: bool) -> Result<Pf1> {
    let (rounds, add_calls, echo_calls): (usize, u32, u32) = if quick {
        (3, 200_000, 20_000)
    } else {
        (7, 5_000_000, 500_000)
    };
    let payload = "x".repeat(1024);
    let (caller, callee) = fixtures(root)?;

    let mut drivers: Vec<Box<dyn Driver>> = vec![
        Box::new(Floor(SyncDriver::composed(&caller, &callee)?)),
        Box::new(AmimonoDriver::new(&root.join("bench/app"))?),
        Box::new(SyncDriver::composed(&caller, &callee)?),
        Box::new(SyncDriver::forwarded(&caller, &callee)?),
        Box::new(SyncDriver::composed_on(epoch_engine()?, &caller, &callee)?),
    ];
    let expected_add = (0..add_calls).fold(0u32, |acc, i| acc.wrapping_add(i));
    let expected_echo = echo_calls.wrapping_mul(1024);
    let mut add = vec![Vec::new(); WAYS.len()];
    let mut echo = vec![Vec::new(); WAYS.len()];
    for _ in 0..rounds {
        for (i, driver) in drivers.iter_mut().enumerate() {
            let started = Instant::now();
            let got = driver.run_add(add_calls)?;
            add[i].push(started.elapsed().as_nanos() as f64 / f64::from(add_calls));
            anyhow::ensure!(got == expected_add, "{}: add loop returned {got}", WAYS[i]);
            let started = Instant::now();
            let got = driver.run_echo(echo_calls, &payload)?;
            echo[i].push(started.elapsed().as_nanos() as f64 / f64::from(echo_calls));
            anyhow::ensure!(
                got == expected_echo,
                "{}: echo loop returned {got}",
                WAYS[i]
            );
        }
    }
    let med = |v: &[Vec<f64>]| -> [f64; 5] { std::array::from_fn(|i| median(&v[i])) };
    // A tapped call instantiates the callee: far fewer calls per round.
    let tapped_calls = (echo_calls / 100).max(200);
    let mut tapped = TappedDriver::new(root)?;
    let (mut tapped_add, mut tapped_echo) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let started = Instant::now();
        tapped.run_add(tapped_calls)?;
        tapped_add.push(started.elapsed().as_nanos() as f64 / f64::from(tapped_calls));
        let started = Instant::now();
        let got = tapped.run_echo(tapped_calls, &payload)?;
        tapped_echo.push(started.elapsed().as_nanos() as f64 / f64::from(tapped_calls));
        anyhow::ensure!(
            got == tapped_calls.wrapping_mul(1024),
            "tapped echo loop returned {got}"
        );
    }
    Ok(Pf1 {
        add_ns: med(&add),
        echo_ns: med(&echo),
        rounds,
        add_calls,
        echo_calls,
        tapped_add_ns: median(&tapped_add),
        tapped_echo_ns: median(&tapped_echo),
        tapped_calls,
    })
}

/// The bench app's caller run through its tapped graph: every call to the
/// callee goes through a tap (timed and counted), as in a request sampled
/// for observation. The job is kept alive beside the driver.
struct TappedDriver {
    driver: AmimonoDriver,
    _job: amimono::Job,
}

impl TappedDriver {
    fn new(root: &Path) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let data = root.join("target/bench/pf1-data");
        std::fs::create_dir_all(&data)?;
        let job = runtime.block_on(
            amimono::Application::open(root.join("bench/app"))?
                .job("_local")
                .data_dir(&data)
                .metrics(true)
                .local_sample_ratio(1.0)
                .prepare(),
        )?;
        let graph = amimono::internals::tapped_graph(&job, "caller")
            .context("the bench app's caller has no tapped graph")?;
        let store = amimono::internals::new_store(graph.pre.engine(), &graph.settings);
        let driver = AmimonoDriver::instantiate(runtime, store, &graph.pre)?;
        Ok(TappedDriver { driver, _job: job })
    }
}

impl Driver for TappedDriver {
    fn run_add(&mut self, n: u32) -> Result<u32> {
        self.driver.run_add(n)
    }
    fn run_echo(&mut self, n: u32, s: &str) -> Result<u32> {
        self.driver.run_echo(n, s)
    }
}

/// The caller and callee fixtures' bytes.
fn fixtures(root: &Path) -> Result<(Vec<u8>, Vec<u8>)> {
    let read = |name: &str| {
        let path = root.join(format!("target/wasm32-wasip2/release/{name}.wasm"));
        std::fs::read(&path)
            .with_context(|| format!("reading {} (run `cargo xtask build`)", path.display()))
    };
    Ok((read("fixture_bench_caller")?, read("fixture_bench_callee")?))
}

/// PF1's "amimono (colocated in one job)" and "host-forwarded" ways, for a
/// measure that prints its own figures beside them (EMBED), same rounds.
pub(crate) fn colocated_and_forwarded(root: &Path) -> Result<[Box<dyn Driver>; 2]> {
    let (caller, callee) = fixtures(root)?;
    Ok([
        Box::new(AmimonoDriver::new(&root.join("bench/app"))?),
        Box::new(SyncDriver::forwarded(&caller, &callee)?),
    ])
}

/// The composed app run by the host itself.
struct AmimonoDriver {
    runtime: tokio::runtime::Runtime,
    store: Store<HostState>,
    run_add: TypedFunc<(u32,), (u32,)>,
    run_echo: TypedFunc<(u32, String), (u32,)>,
}

impl AmimonoDriver {
    fn new(app_dir: &Path) -> Result<Self> {
        let app = App::load(app_dir)?;
        let engine = new_engine(EngineUse::Serving)?;
        let placement = Placement::local(&app);
        let composed = amimono::internals::compose_graph(&app, &placement, "caller")?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let capabilities = runtime.block_on(crate::capabilities::open(
            &app,
            &placement,
            RuntimeFacts::default(),
        ))?;
        let graph = prepare_graph(
            &engine,
            &app,
            &LinkContext::local(Arc::new(capabilities)),
            &composed,
        )?;
        let store =
            amimono::internals::new_store(&engine, &amimono::internals::StoreSettings::default());
        AmimonoDriver::instantiate(runtime, store, &graph.pre)
    }

    /// Instantiates `pre` in `store` and finds the driver's loops.
    fn instantiate(
        runtime: tokio::runtime::Runtime,
        mut store: Store<HostState>,
        pre: &wasmtime::component::InstancePre<HostState>,
    ) -> Result<Self> {
        let instance = runtime
            .block_on(pre.instantiate_async(&mut store))
            .anyhow()?;
        let run_add = typed(&instance, &mut store, DRIVER, "run-add")?;
        let run_echo = typed(&instance, &mut store, DRIVER, "run-echo")?;
        Ok(AmimonoDriver {
            runtime,
            store,
            run_add,
            run_echo,
        })
    }
}

impl Driver for AmimonoDriver {
    fn run_add(&mut self, n: u32) -> Result<u32> {
        let f = self.run_add;
        Ok(self
            .runtime
            .block_on(f.call_async(&mut self.store, (n,)))
            .anyhow()?
            .0)
    }
    fn run_echo(&mut self, n: u32, s: &str) -> Result<u32> {
        let f = self.run_echo;
        Ok(self
            .runtime
            .block_on(f.call_async(&mut self.store, (n, s.to_string())))
            .anyhow()?
            .0)
    }
}

/// Store data for the reference drivers: WASI, plus the callee's functions
/// for the host-forwarding variant.
struct BenchState {
    host: HostState,
    table: ResourceTable,
    add: Option<TypedFunc<(u32, u32), (u32,)>>,
    echo: Option<TypedFunc<(String,), (String,)>>,
}

impl WasiView for BenchState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let _ = &self.table;
        self.host.ctx()
    }
}

/// A sync store running the driver of either the wac-graph composition or
/// the separately instantiated pair.
struct SyncDriver {
    store: Store<BenchState>,
    run_add: TypedFunc<(u32,), (u32,)>,
    run_echo: TypedFunc<(u32, String), (u32,)>,
    local_add: TypedFunc<(u32,), (u32,)>,
    local_echo: TypedFunc<(u32, String), (u32,)>,
}

fn sync_engine() -> Result<Engine> {
    Engine::new(&Config::new()).anyhow()
}

/// A sync engine with epoch interruption, as amimono's engines have.
fn epoch_engine() -> Result<Engine> {
    let mut config = Config::new();
    config.epoch_interruption(true);
    Engine::new(&config).anyhow()
}

fn new_store(engine: &Engine) -> Store<BenchState> {
    let mut store = Store::new(
        engine,
        BenchState {
            host: HostState::new(&amimono::internals::StoreSettings::default()),
            table: ResourceTable::new(),
            add: None,
            echo: None,
        },
    );
    // Never reached: the epoch engine's checks run, the deadline never hits.
    store.set_epoch_deadline(u64::MAX / 2);
    store
}

impl SyncDriver {
    /// The pair composed with wac-graph, as a user would do by hand.
    fn composed(caller: &[u8], callee: &[u8]) -> Result<Self> {
        Self::composed_on(sync_engine()?, caller, callee)
    }

    /// The same, on `engine`.
    fn composed_on(engine: Engine, caller: &[u8], callee: &[u8]) -> Result<Self> {
        use wac_graph::types::Package;
        use wac_graph::{CompositionGraph, EncodeOptions};
        let mut graph = CompositionGraph::new();
        let callee_pkg =
            Package::from_bytes("bench:callee", None, callee.to_vec(), graph.types_mut())?;
        let callee_pkg = graph.register_package(callee_pkg)?;
        let caller_pkg =
            Package::from_bytes("bench:caller", None, caller.to_vec(), graph.types_mut())?;
        let caller_pkg = graph.register_package(caller_pkg)?;
        let callee_node = graph.instantiate(callee_pkg);
        let caller_node = graph.instantiate(caller_pkg);
        let target = graph.alias_instance_export(callee_node, TARGET)?;
        graph.set_instantiation_argument(caller_node, TARGET, target)?;
        let driver = graph.alias_instance_export(caller_node, DRIVER)?;
        graph.export(driver, DRIVER)?;
        let bytes = graph.encode(EncodeOptions::default())?;
        let component = Component::new(&engine, &bytes).anyhow()?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).anyhow()?;
        let mut store = new_store(&engine);
        let instance = linker.instantiate(&mut store, &component).anyhow()?;
        Self::from_instance(store, &instance)
    }

    /// The pair instantiated separately, calls forwarded by host functions.
    fn forwarded(caller: &[u8], callee: &[u8]) -> Result<Self> {
        let engine = sync_engine()?;
        let mut linker: Linker<BenchState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).anyhow()?;
        let mut store = new_store(&engine);
        let callee = Component::new(&engine, callee).anyhow()?;
        let callee = linker.instantiate(&mut store, &callee).anyhow()?;
        let add = typed(&callee, &mut store, TARGET, "add")?;
        let echo = typed(&callee, &mut store, TARGET, "echo")?;
        store.data_mut().add = Some(add);
        store.data_mut().echo = Some(echo);
        let mut target = linker.instance(TARGET).anyhow()?;
        target
            .func_wrap("add", |mut store, (a, b): (u32, u32)| {
                let f = store
                    .data()
                    .add
                    .ok_or_else(|| wasmtime::format_err!("add not set"))?;
                f.call(&mut store, (a, b))
            })
            .anyhow()?;
        target
            .func_wrap("echo", |mut store, (s,): (String,)| {
                let f = store
                    .data()
                    .echo
                    .ok_or_else(|| wasmtime::format_err!("echo not set"))?;
                f.call(&mut store, (s,))
            })
            .anyhow()?;
        let caller = Component::new(&engine, caller).anyhow()?;
        let instance = linker.instantiate(&mut store, &caller).anyhow()?;
        Self::from_instance(store, &instance)
    }

    fn from_instance(mut store: Store<BenchState>, instance: &Instance) -> Result<Self> {
        Ok(SyncDriver {
            run_add: typed(instance, &mut store, DRIVER, "run-add")?,
            run_echo: typed(instance, &mut store, DRIVER, "run-echo")?,
            local_add: typed(instance, &mut store, DRIVER, "local-add")?,
            local_echo: typed(instance, &mut store, DRIVER, "local-echo")?,
            store,
        })
    }
}

impl Driver for SyncDriver {
    fn run_add(&mut self, n: u32) -> Result<u32> {
        Ok(self.run_add.call(&mut self.store, (n,)).anyhow()?.0)
    }
    fn run_echo(&mut self, n: u32, s: &str) -> Result<u32> {
        Ok(self
            .run_echo
            .call(&mut self.store, (n, s.to_string()))
            .anyhow()?
            .0)
    }
}

/// The driver's own loops against a function inside the caller.
struct Floor(SyncDriver);

impl Driver for Floor {
    fn run_add(&mut self, n: u32) -> Result<u32> {
        Ok(self.0.local_add.call(&mut self.0.store, (n,)).anyhow()?.0)
    }
    fn run_echo(&mut self, n: u32, s: &str) -> Result<u32> {
        Ok(self
            .0
            .local_echo
            .call(&mut self.0.store, (n, s.to_string()))
            .anyhow()?
            .0)
    }
}

pub(crate) fn typed<T, P, R>(
    instance: &Instance,
    mut store: &mut Store<T>,
    interface: &str,
    function: &str,
) -> Result<TypedFunc<P, R>>
where
    P: wasmtime::component::ComponentNamedList + wasmtime::component::Lower + Send + Sync + 'static,
    R: wasmtime::component::ComponentNamedList + wasmtime::component::Lift + Send + Sync + 'static,
{
    let interface_index = instance
        .get_export_index(&mut store, None, interface)
        .with_context(|| format!("no export `{interface}`"))?;
    let index = instance
        .get_export_index(&mut store, Some(&interface_index), function)
        .with_context(|| format!("no function `{function}` in `{interface}`"))?;
    instance
        .get_typed_func::<P, R>(&mut store, &index)
        .anyhow()
        .with_context(|| format!("typing `{interface}#{function}`"))
}
