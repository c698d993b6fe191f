//! The raw hyper baseline of PF2: a minimal HTTP/1.1 server that answers
//! every POST by echoing its body, with the headers an amimono callee adds
//! (content type and a revision of the same length). It runs in its own
//! process, like an `amimono run` callee, with the same kind of runtime
//! (multi-threaded tokio, one worker per core) and keep-alive connections
//! with `TCP_NODELAY`.
//!
//! Started as `amimono-bench --raw-echo-server <port>` (0 = any free port);
//! prints `listening on <address>` on stdout once it accepts connections and
//! exits when its stdin is closed, so it never outlives the benchmark.
//!
//! With `--instantiate <app dir>` (for attribution) it also does, for every
//! request, what an amimono callee does besides the protocol: a new store, a
//! fresh instance of the `callee` graph of that app's `callees` job (pooling
//! allocator), the call (`echo` of a 1 KiB string when the function header
//! names `echo`, else `add(0, 0)`, typed: no value encoding) and dropping the
//! store, all before answering. The answer is still the echoed body.

use amimono::internals::App;
use amimono::internals::IntoAnyhow;
use amimono::internals::Placement;
use amimono::internals::RuntimeFacts;
use amimono::internals::protocol::{CONTENT_TYPE, HEADER_FUNCTION, HEADER_REVISION};
use amimono::internals::{EngineUse, new_engine};
use amimono::internals::{HostState, new_store};
use amimono::internals::{LinkContext, compose_graph, prepare_graph};
use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use tokio::net::TcpListener;
use wasmtime::component::{ComponentExportIndex, InstancePre};

/// The command-line flag that selects this mode.
pub const FLAG: &str = "--raw-echo-server";

/// The interface the callee exports.
const TARGET: &str = "amimono-bench:calls/target@0.1.0";

/// The flag that adds an instantiation and a call per request.
pub const INSTANTIATE_FLAG: &str = "--instantiate";

/// A revision of the length the host's has (16 hex digits).
const DUMMY_REVISION: &str = "0000000000000000";

/// Serves on `127.0.0.1:<port>` until stdin is closed; with `instantiate`
/// (an app directory), runs its callee in a fresh instance per request.
pub fn run(port: u16, instantiate: Option<&Path>) -> Result<()> {
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        std::process::exit(0);
    });
    let callee = instantiate.map(Callee::new).transpose()?.map(Arc::new);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(port, callee))
}

/// The callee graph of the `callees` job, prepared as `amimono run` prepares
/// it, and its two functions.
struct Callee {
    pre: InstancePre<HostState>,
    add: ComponentExportIndex,
    echo: ComponentExportIndex,
    payload: String,
}

impl Callee {
    fn new(app_dir: &Path) -> Result<Callee> {
        let app = App::load(app_dir)?;
        let placement = Placement::for_job(&app, "callees")?;
        let composed = compose_graph(&app, &placement, "callee")?;
        let engine = new_engine(EngineUse::Serving)?;
        let capabilities = tokio::runtime::Builder::new_current_thread()
            .build()?
            .block_on(crate::capabilities::open(
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
        let interface = graph
            .component
            .get_export_index(None, TARGET)
            .with_context(|| format!("the callee graph does not export `{TARGET}`"))?;
        let function = |name: &str| {
            graph
                .component
                .get_export_index(Some(&interface), name)
                .with_context(|| format!("the callee graph exports no `{name}`"))
        };
        Ok(Callee {
            add: function("add")?,
            echo: function("echo")?,
            pre: graph.pre,
            payload: "x".repeat(1024),
        })
    }

    /// One call in a fresh instance, as the callee job makes it.
    async fn call(&self, echo: bool) -> Result<()> {
        let mut store = new_store(
            self.pre.engine(),
            &amimono::internals::StoreSettings::default(),
        );
        let instance = self.pre.instantiate_async(&mut store).await.anyhow()?;
        if echo {
            let f = instance
                .get_typed_func::<(String,), (String,)>(&mut store, self.echo)
                .anyhow()?;
            f.call_async(&mut store, (self.payload.clone(),))
                .await
                .anyhow()?;
        } else {
            let f = instance
                .get_typed_func::<(u32, u32), (u32,)>(&mut store, self.add)
                .anyhow()?;
            f.call_async(&mut store, (0, 0)).await.anyhow()?;
        }
        Ok(())
    }
}

async fn serve(port: u16, callee: Option<Arc<Callee>>) -> Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("listening on 127.0.0.1:{port}"))?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {}", listener.local_addr()?)?;
        out.flush()?;
    }
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let callee = callee.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let callee = callee.clone();
                async move { echo(callee.as_deref(), request).await }
            });
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn echo(
    callee: Option<&Callee>,
    request: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let echo_call = request
        .headers()
        .get(HEADER_FUNCTION)
        .is_some_and(|f| f.as_bytes().ends_with(b"#echo"));
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    if let Some(callee) = callee
        && let Err(e) = callee.call(echo_call).await
    {
        let mut response = hyper::Response::new(Full::new(Bytes::from(format!("{e:#}\n"))));
        *response.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
        return Ok(response);
    }
    let mut response = hyper::Response::new(Full::new(body));
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static(CONTENT_TYPE),
    );
    headers.insert(
        HeaderName::from_static(HEADER_REVISION),
        HeaderValue::from_static(DUMMY_REVISION),
    );
    Ok(response)
}
