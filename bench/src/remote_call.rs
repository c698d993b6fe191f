//! PF2, the remote call: µs per call of `add(u32,u32)` and a 1 KiB string
//! echo from a component in one job to a component in another job, against
//! a raw hyper request carrying the same bytes. Latency of single calls on
//! one keep-alive loopback connection, sequential (no concurrency).
//!
//! The callee job (`callees` of `bench/app-split`) runs as a real
//! `target/release/amimono run` process; the raw baseline is this binary's
//! `--raw-echo-server` mode ([`crate::raw_server`]), also a separate process.
//! The callers run in this process, on a current-thread tokio runtime:
//! - raw hyper: hyper-util's legacy client (as `RemoteClient` uses: pooled
//!   keep-alive, `TCP_NODELAY`) posting the body amimono would send, with
//!   the same path and headers, to the raw echo server;
//! - amimono host client: `RemoteClient::call` with `Val`s, no wasm;
//! - amimono from a guest: the caller's graph of `bench/app-split`, linked
//!   by the host library with a remote stub, entered with `run-add(1)` /
//!   `run-echo(1, s)`: one remote call from inside wasm plus one
//!   host → guest entry (~0.2 µs).
//!
//! For attribution it also measures the raw client against the amimono
//! callee (server-side cost), against a raw server that also calls the
//! callee in a fresh instance per request (`--instantiate`: how much of the
//! server-side cost is the instance rather than the protocol),
//! `RemoteClient` against the raw server (client-side cost) and, in this
//! process, what the callee does per call besides HTTP, step by step: a new
//! store, an instantiation from `InstancePre` (pooling allocator), the call
//! with `Val`s, dropping the store (which resets the instance's memory).
//!
//! ratio = amimono from a guest / raw hyper, the worse of add and echo;
//! goals: median ≤ 1.1, p99 ≤ 1.2.

use crate::child::ChildGuard;
use crate::colocated::typed;
use crate::host_process::{HostProcess, free_port};
use crate::stats::{median, percentile};
use amimono::internals::App;
use amimono::internals::IntoAnyhow;
use amimono::internals::Placement;
use amimono::internals::RuntimeFacts;
use amimono::internals::auth::{self, Authentication, CallFields, ClusterKey};
use amimono::internals::client::{RemoteClient, RemoteFunction, RemoteTarget};
use amimono::internals::codec;
use amimono::internals::protocol::{
    CALL_PATH, CONTENT_TYPE, HEADER_CALLER, HEADER_DEADLINE_MS, HEADER_FUNCTION, HEADER_REVISION,
};
use amimono::internals::{EngineUse, new_engine};
use amimono::internals::{HostState, new_store};
use amimono::internals::{LinkContext, compose_graph, prepare_graph};
use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{ComponentExportIndex, InstancePre, Type, TypedFunc, Val};
use wasmtime::{Engine, Store};

const TARGET: &str = "amimono-bench:calls/target@0.1.0";
const DRIVER: &str = "amimono-bench:calls/driver@0.1.0";
/// The job running the callee, as a separate process.
const CALLEE_JOB: &str = "callees";
/// The job whose graph this process runs.
const CALLER_JOB: &str = "callers";
const MEDIAN_GOAL: f64 = 1.1;
const P99_GOAL: f64 = 1.2;
/// Calls in a row of one way and function before the next way's turn.
const CHUNK: usize = 100;

/// The ways a call is made, in measurement order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    /// Raw hyper client → raw echo server.
    Raw,
    /// `RemoteClient::call` → amimono callee.
    HostClient,
    /// A guest's import → remote stub → `RemoteClient` → amimono callee.
    Guest,
    /// Raw hyper client → amimono callee (attribution: the server side).
    RawToAmimono,
    /// Raw hyper client → raw echo server that also runs the callee in a
    /// fresh instance per request (attribution: the callee's work inside a
    /// server, without the protocol).
    RawInstantiating,
    /// `RemoteClient::call` → raw echo server (attribution: the client side).
    ClientToRaw,
    /// In this process: new store + instantiate + call the callee
    /// (attribution: what the callee does besides HTTP).
    CalleeInProcess,
}

const WAYS: [Way; 7] = [
    Way::Raw,
    Way::HostClient,
    Way::Guest,
    Way::RawToAmimono,
    Way::RawInstantiating,
    Way::ClientToRaw,
    Way::CalleeInProcess,
];

impl Way {
    fn label(self) -> &'static str {
        match self {
            Way::Raw => "raw hyper (separate process, same bytes and headers)",
            Way::HostClient => "amimono host client (`RemoteClient::call`, no wasm)",
            Way::Guest => "amimono from a guest (`run-add(1)`, `run-echo(1, s)`)",
            Way::RawToAmimono => "raw hyper client → amimono callee",
            Way::RawInstantiating => {
                "raw hyper client → raw server + callee call in a fresh instance"
            }
            Way::ClientToRaw => "amimono host client → raw echo server",
            Way::CalleeInProcess => {
                "callee work without HTTP: new store + instantiate + call (in process)"
            }
        }
    }

    fn key(self) -> &'static str {
        match self {
            Way::Raw => "raw_hyper",
            Way::HostClient => "amimono_host_client",
            Way::Guest => "amimono_guest",
            Way::RawToAmimono => "raw_client_to_amimono_callee",
            Way::RawInstantiating => "raw_client_to_instantiating_raw_server",
            Way::ClientToRaw => "amimono_client_to_raw_server",
            Way::CalleeInProcess => "callee_in_process",
        }
    }

    fn index(self) -> usize {
        WAYS.iter().position(|w| *w == self).unwrap_or(0)
    }
}

/// The function called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Echo,
}

/// Median and p99 of one way and function, µs.
#[derive(Debug, Clone, Copy, Default)]
struct Figure {
    median: f64,
    p99: f64,
}

impl Figure {
    fn of(samples: &[f64]) -> Figure {
        Figure {
            median: median(samples),
            p99: percentile(samples, 99.0),
        }
    }

    fn json(self) -> serde_json::Value {
        serde_json::json!({ "median": self.median, "p99": self.p99 })
    }
}

/// The steps of the callee's work, timed in process.
const STEPS: [&str; 4] = ["new store", "instantiate", "get + call", "drop store"];

/// PF2 results: µs per call for each way.
pub struct Pf2 {
    add: [Figure; WAYS.len()],
    echo: [Figure; WAYS.len()],
    /// Median µs of each of [`STEPS`], for add and echo.
    steps: [[f64; STEPS.len()]; 2],
    rounds: usize,
    calls: usize,
}

impl Pf2 {
    fn get(&self, op: Op, way: Way) -> Figure {
        match op {
            Op::Add => self.add[way.index()],
            Op::Echo => self.echo[way.index()],
        }
    }

    /// (add, echo) ratios of the guest over raw hyper, for medians and p99.
    fn ratios(&self) -> ([f64; 2], [f64; 2]) {
        let ratio = |op: Op, pick: fn(Figure) -> f64| {
            pick(self.get(op, Way::Guest)) / pick(self.get(op, Way::Raw))
        };
        (
            [ratio(Op::Add, |f| f.median), ratio(Op::Echo, |f| f.median)],
            [ratio(Op::Add, |f| f.p99), ratio(Op::Echo, |f| f.p99)],
        )
    }

    fn worst(&self) -> (f64, f64) {
        let (median, p99) = self.ratios();
        (median[0].max(median[1]), p99[0].max(p99[1]))
    }

    fn met(&self) -> (bool, bool) {
        let (median, p99) = self.worst();
        (median <= MEDIAN_GOAL, p99 <= P99_GOAL)
    }

    fn row(&self, way: Way) -> String {
        let (add, echo) = (self.get(Op::Add, way), self.get(Op::Echo, way));
        format!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.1} |\n",
            way.label(),
            add.median,
            add.p99,
            echo.median,
            echo.p99
        )
    }

    /// The table, as markdown, then the attribution.
    pub fn table(&self) -> String {
        const HEADER: &str = "| add median | add p99 | echo 1 KiB median | echo 1 KiB p99 |\n|---|---:|---:|---:|---:|\n";
        let mut out = format!(
            "PF2 remote call: µs per call, one keep-alive loopback connection, sequential; {} rounds of {} calls per way and function, interleaved in chunks of {CHUNK}; median and p99 of all calls\n\n| how the call is made {HEADER}",
            self.rounds, self.calls
        );
        for way in [Way::Raw, Way::HostClient, Way::Guest] {
            out.push_str(&self.row(way));
        }
        let (median, p99) = self.ratios();
        let (worst_median, worst_p99) = self.worst();
        let met = self.met();
        out.push_str(&format!(
            "\nratio amimono (guest) / raw hyper: median {worst_median:.2} (goal ≤ {MEDIAN_GOAL}), p99 {worst_p99:.2} (goal ≤ {P99_GOAL}) {}\n(add: median {:.2}, p99 {:.2}; echo: median {:.2}, p99 {:.2})\n",
            if met.0 && met.1 { "MET" } else { "MISSED" },
            median[0],
            p99[0],
            median[1],
            p99[1],
        ));
        out.push_str(&format!(
            "\nPF2 attribution: µs per call, same rounds\n\n| measure {HEADER}"
        ));
        for way in [
            Way::RawToAmimono,
            Way::RawInstantiating,
            Way::ClientToRaw,
            Way::CalleeInProcess,
        ] {
            out.push_str(&self.row(way));
        }
        out.push_str(&format!(
            "\n| callee work in process, by step (medians) | {} |\n|---|{}\n",
            STEPS.join(" | "),
            "---:|".repeat(STEPS.len())
        ));
        for (name, steps) in ["add", "echo"].iter().zip(self.steps) {
            out.push_str(&format!(
                "| {name} | {} |\n",
                steps
                    .iter()
                    .map(|us| format!("{us:.2}"))
                    .collect::<Vec<_>>()
                    .join(" | ")
            ));
        }
        let diff = |op: Op, a: Way, b: Way| self.get(op, a).median - self.get(op, b).median;
        out.push_str("\n| where the guest's extra time goes (differences of medians) | add µs | echo µs |\n|---|---:|---:|\n");
        let parts: [(&str, Way, Way); 6] = [
            (
                "callee side: (raw client → amimono callee) − raw hyper",
                Way::RawToAmimono,
                Way::Raw,
            ),
            (
                "  of which the call in a fresh instance: (raw server + callee) − raw hyper",
                Way::RawInstantiating,
                Way::Raw,
            ),
            (
                "  of which the protocol (headers, values, deadline): (amimono callee) − (raw server + callee)",
                Way::RawToAmimono,
                Way::RawInstantiating,
            ),
            (
                "client side: (host client → raw server) − raw hyper",
                Way::ClientToRaw,
                Way::Raw,
            ),
            (
                "wasm caller: guest − host client",
                Way::Guest,
                Way::HostClient,
            ),
            ("total: guest − raw hyper", Way::Guest, Way::Raw),
        ];
        for (what, a, b) in parts {
            out.push_str(&format!(
                "| {what} | {:.1} | {:.1} |\n",
                diff(Op::Add, a, b),
                diff(Op::Echo, a, b)
            ));
        }
        out
    }

    /// The JSON entry for `results.json`.
    pub fn json(&self) -> serde_json::Value {
        let (median, p99) = self.ratios();
        let (worst_median, worst_p99) = self.worst();
        let met = self.met();
        let figures = |op: Op| -> serde_json::Value {
            WAYS.iter()
                .map(|w| (w.key().to_string(), self.get(op, *w).json()))
                .collect::<serde_json::Map<_, _>>()
                .into()
        };
        serde_json::json!({
            "ratio": worst_median,
            "goal": MEDIAN_GOAL,
            "met": met.0 && met.1,
            "median_met": met.0,
            "p99_ratio": worst_p99,
            "p99_goal": P99_GOAL,
            "p99_met": met.1,
            "ratios": {
                "add": { "median": median[0], "p99": p99[0] },
                "echo": { "median": median[1], "p99": p99[1] },
            },
            "add_us": figures(Op::Add),
            "echo_us": figures(Op::Echo),
            "callee_steps_us": {
                "steps": STEPS,
                "add": self.steps[0],
                "echo": self.steps[1],
            },
            "rounds": self.rounds,
            "calls_per_round": self.calls,
            "chunk": CHUNK,
        })
    }
}

/// Runs PF2: starts the callee job and the raw server, measures, stops them.
pub fn run(root: &Path, quick: bool) -> Result<Pf2> {
    let (rounds, chunks, warmup): (usize, usize, usize) =
        if quick { (3, 3, 100) } else { (7, 30, 500) };
    let calls = chunks * CHUNK;
    let app_dir = root.join("bench/app-split");
    let app = App::load(&app_dir)?;
    let (callee_process, callee_url) = start_callee(root, &app_dir)?;
    let (raw_process, raw_url) = start_raw_server(None)?;
    let (instantiating_process, instantiating_url) = start_raw_server(Some(&app_dir))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut callers = runtime.block_on(Callers::new(
        &app,
        &callee_url,
        &raw_url,
        &instantiating_url,
    ))?;
    let mut steps: [[Vec<f64>; STEPS.len()]; 2] = Default::default();
    let mut samples: [Vec<Vec<f64>>; 2] =
        [vec![Vec::new(); WAYS.len()], vec![Vec::new(); WAYS.len()]];
    let mut discard = Vec::new();
    for way in WAYS {
        for op in [Op::Add, Op::Echo] {
            runtime
                .block_on(callers.batch(way, op, warmup, &mut discard))
                .with_context(|| format!("PF2 warm-up: {}", way.label()))?;
        }
    }
    // Each round is cut into chunks, every way taking its turn per chunk, so
    // that a burst of noise (another process on one of the two cores) hits
    // all ways alike.
    for _ in 0..rounds {
        for _ in 0..chunks {
            for (i, way) in WAYS.into_iter().enumerate() {
                for (o, op) in [Op::Add, Op::Echo].into_iter().enumerate() {
                    runtime
                        .block_on(callers.batch(way, op, CHUNK, &mut samples[o][i]))
                        .with_context(|| format!("PF2: {}", way.label()))?;
                }
            }
            for (o, op) in [Op::Add, Op::Echo].into_iter().enumerate() {
                runtime
                    .block_on(callers.callee_steps(op, CHUNK, &mut steps[o]))
                    .context("PF2: callee steps")?;
            }
        }
    }
    drop(callers);
    drop(runtime);
    drop(raw_process);
    drop(instantiating_process);
    drop(callee_process);
    let figures =
        |v: &[Vec<f64>]| -> [Figure; WAYS.len()] { std::array::from_fn(|i| Figure::of(&v[i])) };
    Ok(Pf2 {
        add: figures(&samples[0]),
        echo: figures(&samples[1]),
        steps: steps.map(|s| s.map(|v| median(&v))),
        rounds,
        calls,
    })
}

/// Starts `amimono run` for the callee job with a bindings file giving it a
/// free port; returns once it runs, with its base URL.
fn start_callee(root: &Path, app_dir: &Path) -> Result<(HostProcess, String)> {
    let port = free_port()?;
    let dir = root.join("target/bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let bindings = dir.join("pf2-bindings.toml");
    let url = format!("http://127.0.0.1:{port}");
    std::fs::write(
        &bindings,
        format!(
            "# Written by the PF2 benchmark.\n[components.callee]\ntype = \"rpc\"\ninternal = \"127.0.0.1:{port}\"\nexternal = \"{url}\"\n"
        ),
    )
    .with_context(|| format!("writing {}", bindings.display()))?;
    let host = HostProcess::start(
        root,
        "the PF2 callee job",
        app_dir.as_os_str(),
        &[
            ("AMIMONO_JOB", CALLEE_JOB.as_ref()),
            ("AMIMONO_BINDINGS", bindings.as_os_str()),
        ],
        &[],
    )?;
    Ok((host, url))
}

/// Starts this binary's raw echo server on a free port, instantiating the
/// callee graph of `instantiate` (an app directory) per request if given;
/// returns its base URL.
fn start_raw_server(instantiate: Option<&Path>) -> Result<(ChildGuard, String)> {
    let exe = std::env::current_exe().context("locating the benchmark binary")?;
    let mut command = Command::new(exe);
    command.args([crate::raw_server::FLAG, "0"]);
    if let Some(app_dir) = instantiate {
        command
            .arg(crate::raw_server::INSTANTIATE_FLAG)
            .arg(app_dir);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting the raw echo server")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let guard = ChildGuard(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .context("reading the raw echo server's address")?;
    let Some(address) = line.trim().strip_prefix("listening on ") else {
        bail!("unexpected first line from the raw echo server: {line:?}");
    };
    Ok((guard, format!("http://{address}")))
}

/// The hosts' cluster key (see [`crate::host_process::BENCH_CLUSTER_KEY`]).
fn bench_key() -> ClusterKey {
    match ClusterKey::from_bytes(crate::host_process::BENCH_CLUSTER_KEY.as_bytes()) {
        Some(key) => key,
        None => unreachable!("the bench key is long enough"),
    }
}

/// A raw hyper client sending exactly the requests `RemoteClient` sends:
/// same path, same headers and values, same body.
struct RawClient {
    http: Client<HttpConnector, Full<Bytes>>,
    revision: String,
    caller: String,
    timeout: Duration,
    key: ClusterKey,
}

impl RawClient {
    fn new(revision: &str, caller: &str, timeout: Duration) -> RawClient {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        RawClient {
            http: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(60))
                .build(connector),
            revision: revision.to_string(),
            caller: caller.to_string(),
            timeout,
            key: bench_key(),
        }
    }

    /// Posts `body` to `uri`, checks the answer is `expected`.
    async fn post(
        &self,
        uri: &hyper::Uri,
        function: &str,
        body: &Bytes,
        expected: &[u8],
    ) -> Result<()> {
        let deadline_ms = self.timeout.as_millis().to_string();
        // Signed like the host's own client: a callee refuses unsigned calls.
        let label = uri.path().rsplit('/').next().unwrap_or_default();
        let fields = CallFields {
            revision: &self.revision,
            label,
            function,
            deadline_ms: &deadline_ms,
            caller: &self.caller,
        };
        let request = hyper::Request::post(uri.clone())
            .header(HEADER_REVISION, &self.revision)
            .header(HEADER_FUNCTION, function)
            .header(HEADER_DEADLINE_MS, &deadline_ms)
            .header(HEADER_CALLER, &self.caller)
            .header(hyper::header::CONTENT_TYPE, CONTENT_TYPE)
            .header(auth::HEADER_AUTH, auth::sign(&self.key, &fields, body))
            .body(Full::new(body.clone()))?;
        let response = self.http.request(request).await?;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        ensure!(
            status == 200 && bytes.as_ref() == expected,
            "unexpected answer {status}: {bytes:?}"
        );
        Ok(())
    }
}

/// One remote function's call data: its description, arguments, and the
/// bytes on the wire.
struct Call {
    function: RemoteFunction,
    params: Vec<Val>,
    expected: Val,
    body: Bytes,
    answer: Bytes,
    /// The function typed so that the echoed request decodes as its answer
    /// (results = parameter types), for `RemoteClient` against the raw server.
    echoed: RemoteFunction,
    /// The callee graph's export, for the in-process measure.
    export: ComponentExportIndex,
}

impl Call {
    fn new(
        function: RemoteFunction,
        params: Vec<Val>,
        expected: Val,
        export: ComponentExportIndex,
    ) -> Result<Call> {
        let mut body = Vec::new();
        codec::encode_values(&params, &function.params, &mut body)?;
        let mut answer = Vec::new();
        codec::encode_values(
            std::slice::from_ref(&expected),
            &function.results,
            &mut answer,
        )?;
        let mut echoed = function.clone();
        echoed.results = function.params.clone();
        Ok(Call {
            function,
            params,
            expected,
            body: Bytes::from(body),
            answer: Bytes::from(answer),
            echoed,
            export,
        })
    }
}

/// Everything that makes calls, set up once.
struct Callers {
    store: Store<HostState>,
    run_add: TypedFunc<(u32,), (u32,)>,
    run_echo: TypedFunc<(u32, String), (u32,)>,
    payload: String,
    client: Arc<RemoteClient>,
    raw: RawClient,
    callee: Arc<RemoteTarget>,
    raw_server: RemoteTarget,
    callee_uri: hyper::Uri,
    raw_uri: hyper::Uri,
    instantiating_uri: hyper::Uri,
    add: Call,
    echo: Call,
    callee_pre: InstancePre<HostState>,
}

impl Callers {
    async fn new(
        app: &App,
        callee_url: &str,
        raw_url: &str,
        instantiating_url: &str,
    ) -> Result<Callers> {
        let timeout = app
            .component("callee")
            .and_then(|c| c.spec.call_timeout)
            .unwrap_or(app.manifest.call_timeout);
        let callee =
            Arc::new(RemoteTarget::new("callee", callee_url, timeout).map_err(anyhow::Error::msg)?);
        let raw_server =
            RemoteTarget::new("callee", raw_url, timeout).map_err(anyhow::Error::msg)?;
        let client = Arc::new(RemoteClient::new(
            &app.revision,
            CALLER_JOB,
            Authentication::Key(bench_key()),
        ));
        let engine = new_engine(EngineUse::Serving)?;

        // The caller's graph, its import of `target` bound to the callee job.
        let placement = Placement::for_job(app, CALLER_JOB)?;
        let composed = compose_graph(app, &placement, "caller")?;
        let context = LinkContext {
            capabilities: Arc::new(
                crate::capabilities::open(
                    app,
                    &placement,
                    RuntimeFacts {
                        app: app.name().to_string(),
                        job: CALLER_JOB.to_string(),
                        revision: app.revision.clone(),
                        bindings: BTreeMap::new(),
                    },
                )
                .await?,
            ),
            client: client.clone(),
            targets: BTreeMap::from([("callee".to_string(), callee.clone())]),
            metrics: Arc::new(amimono::internals::Metrics::new(
                &amimono::internals::JobIdentity {
                    app: app.name(),
                    job: CALLER_JOB,
                    revision: &app.revision,
                    replica: 0,
                },
            )),
            taps: None,
        };
        let caller = prepare_graph(&engine, app, &context, &composed)?;
        let mut store = new_store(&engine, &amimono::internals::StoreSettings::default());
        let instance = caller.pre.instantiate_async(&mut store).await.anyhow()?;
        let run_add = typed(&instance, &mut store, DRIVER, "run-add")?;
        let run_echo = typed(&instance, &mut store, DRIVER, "run-echo")?;
        let mut functions = remote_functions(&engine, &caller.component)?;

        // The callee's graph, as its job prepares it.
        let placement = Placement::for_job(app, CALLEE_JOB)?;
        let composed = compose_graph(app, &placement, "callee")?;
        let callee_capabilities =
            crate::capabilities::open(app, &placement, RuntimeFacts::default()).await?;
        let callee_graph = prepare_graph(
            &engine,
            app,
            &LinkContext::local(Arc::new(callee_capabilities)),
            &composed,
        )?;
        let export = |name: &str| -> Result<ComponentExportIndex> {
            let interface = callee_graph
                .component
                .get_export_index(None, TARGET)
                .with_context(|| format!("the callee graph does not export `{TARGET}`"))?;
            callee_graph
                .component
                .get_export_index(Some(&interface), name)
                .with_context(|| format!("the callee graph exports no `{name}`"))
        };

        let payload = "x".repeat(1024);
        let add = Call::new(
            functions.remove("add").context("`target` has no `add`")?,
            vec![Val::U32(0), Val::U32(0)],
            Val::U32(0),
            export("add")?,
        )?;
        let echo = Call::new(
            functions.remove("echo").context("`target` has no `echo`")?,
            vec![Val::String(payload.clone())],
            Val::String(payload.clone()),
            export("echo")?,
        )?;
        let uri = |base: &str| -> Result<hyper::Uri> {
            Ok(format!("{base}{CALL_PATH}callee").parse::<hyper::Uri>()?)
        };
        Ok(Callers {
            store,
            run_add,
            run_echo,
            payload,
            raw: RawClient::new(&app.revision, CALLER_JOB, timeout),
            client,
            callee,
            raw_server,
            callee_uri: uri(callee_url)?,
            raw_uri: uri(raw_url)?,
            instantiating_uri: uri(instantiating_url)?,
            add,
            echo,
            callee_pre: callee_graph.pre,
        })
    }

    /// Makes `n` calls of `op` the way `way`, appending each one's µs to `out`.
    async fn batch(&mut self, way: Way, op: Op, n: usize, out: &mut Vec<f64>) -> Result<()> {
        out.reserve(n);
        for _ in 0..n {
            let started = Instant::now();
            self.once(way, op).await?;
            out.push(started.elapsed().as_secs_f64() * 1e6);
        }
        Ok(())
    }

    async fn once(&mut self, way: Way, op: Op) -> Result<()> {
        let call = match op {
            Op::Add => &self.add,
            Op::Echo => &self.echo,
        };
        match way {
            Way::Raw => {
                self.raw
                    .post(
                        &self.raw_uri,
                        &call.function.qualified,
                        &call.body,
                        &call.body,
                    )
                    .await
            }
            Way::RawInstantiating => {
                self.raw
                    .post(
                        &self.instantiating_uri,
                        &call.function.qualified,
                        &call.body,
                        &call.body,
                    )
                    .await
            }
            Way::RawToAmimono => {
                self.raw
                    .post(
                        &self.callee_uri,
                        &call.function.qualified,
                        &call.body,
                        &call.answer,
                    )
                    .await
            }
            Way::HostClient => {
                let mut results = [Val::Bool(false)];
                self.client
                    .call(&self.callee, &call.function, &call.params, &mut results)
                    .await
                    .context("(if revisions differ, rebuild the host: `cargo build --release -p amimono`)")?;
                ensure!(results[0] == call.expected, "unexpected result");
                Ok(())
            }
            Way::ClientToRaw => {
                let mut results = vec![Val::Bool(false); call.params.len()];
                self.client
                    .call(&self.raw_server, &call.echoed, &call.params, &mut results)
                    .await?;
                ensure!(results == call.params, "unexpected result");
                Ok(())
            }
            Way::CalleeInProcess => {
                let mut store = new_store(
                    self.callee_pre.engine(),
                    &amimono::internals::StoreSettings::default(),
                );
                let instance = self
                    .callee_pre
                    .instantiate_async(&mut store)
                    .await
                    .anyhow()?;
                let func = instance
                    .get_func(&mut store, call.export)
                    .context("the callee's export is not a function")?;
                let mut results = [Val::Bool(false)];
                func.call_async(&mut store, &call.params, &mut results)
                    .await
                    .anyhow()?;
                ensure!(results[0] == call.expected, "unexpected result");
                Ok(())
            }
            Way::Guest => match op {
                Op::Add => {
                    let f = self.run_add;
                    let (got,) = f.call_async(&mut self.store, (1,)).await.anyhow()?;
                    ensure!(got == 0, "run-add(1) returned {got}");
                    Ok(())
                }
                Op::Echo => {
                    let f = self.run_echo;
                    let (got,) = f
                        .call_async(&mut self.store, (1, self.payload.clone()))
                        .await
                        .anyhow()?;
                    ensure!(got == 1024, "run-echo(1, s) returned {got}");
                    Ok(())
                }
            },
        }
    }
}

impl Callers {
    /// Makes `n` calls of `op` in process the way the callee job does, timing
    /// each step: new store, instantiate, get and call the function, drop
    /// the store (which returns the instance's memory to the pool).
    async fn callee_steps(&mut self, op: Op, n: usize, out: &mut [Vec<f64>; 4]) -> Result<()> {
        let call = match op {
            Op::Add => &self.add,
            Op::Echo => &self.echo,
        };
        let us = |from: Instant, to: Instant| (to - from).as_secs_f64() * 1e6;
        for _ in 0..n {
            let t0 = Instant::now();
            let mut store = new_store(
                self.callee_pre.engine(),
                &amimono::internals::StoreSettings::default(),
            );
            let t1 = Instant::now();
            let instance = self
                .callee_pre
                .instantiate_async(&mut store)
                .await
                .anyhow()?;
            let t2 = Instant::now();
            let func = instance
                .get_func(&mut store, call.export)
                .context("the callee's export is not a function")?;
            let mut results = [Val::Bool(false)];
            func.call_async(&mut store, &call.params, &mut results)
                .await
                .anyhow()?;
            let t3 = Instant::now();
            drop(store);
            let t4 = Instant::now();
            ensure!(results[0] == call.expected, "unexpected result");
            for (slot, sample) in
                out.iter_mut()
                    .zip([us(t0, t1), us(t1, t2), us(t2, t3), us(t3, t4)])
            {
                slot.push(sample);
            }
        }
        Ok(())
    }
}

/// The functions of the caller graph's remote import of `target`, typed as
/// the host's stub types them.
fn remote_functions(
    engine: &Engine,
    component: &wasmtime::component::Component,
) -> Result<BTreeMap<String, RemoteFunction>> {
    let component_type = component.component_type();
    let Some(import) = component_type.get_import(engine, TARGET) else {
        bail!("the caller graph does not import `{TARGET}`");
    };
    let ComponentItem::ComponentInstance(instance) = import.ty else {
        bail!("`{TARGET}` is not an interface");
    };
    let mut functions = BTreeMap::new();
    for (name, item) in instance.exports(engine) {
        if let ComponentItem::ComponentFunc(ty) = item.ty {
            functions.insert(
                name.to_string(),
                RemoteFunction {
                    qualified: format!("{TARGET}#{name}"),
                    name: name.to_string(),
                    params: ty.params().map(|(_, t)| t).collect::<Vec<Type>>(),
                    results: ty.results().collect(),
                    idempotent: false,
                },
            );
        }
    }
    Ok(functions)
}
