//! Serving a job's `rpc` components to other jobs: `POST
//! /amimono/v1/call/<label>` (see [`crate::remote::protocol`] and
//! `docs/protocol.md`). Components sharing an address share a listener and
//! are told apart by label.
//!
//! Each call, in order: the `amimono-auth` MAC is checked before anything
//! else ([`crate::remote::auth`]; 401 and no detail otherwise — not even
//! the revision); the caller's revision must equal this host's (409); only
//! functions that components of other jobs import are callable (404); the
//! deadline is the smaller of the caller's and the callee's own
//! (`call_timeout_ms`, `request_timeout_ms`); a declared body above the cap
//! is refused before it is read (413), the body is read within the body
//! timeout and the job's memory budget, and must match its signed digest;
//! then an instance slot (503 when none frees up) and a fresh instance of
//! the component's graph run the call.

use super::body::{self, BodyError};
use super::drain::Drain;
use super::listener::accept_loop;
use super::reply::RequestId;
use super::slots::{InUse, InstanceSlots};
use super::threads::ServingThreads;
use crate::host_state::{HostState, StoreSettings, new_store};
use crate::limits::Limits;
use crate::observe::metrics::Metrics;
use crate::observe::tapped::{TappedGraph, Taps};
use crate::observe::traces::{COMPONENT_ATTRIBUTE, TraceContext};
use crate::remote::auth::{self, Authentication, CallFields, ReplayGuard};
use crate::remote::codec;
use crate::remote::protocol::{
    CALL_PATH, CONTENT_TYPE, HEADER_CALLER, HEADER_DEADLINE_MS, HEADER_FUNCTION, HEADER_REVISION,
    MAX_BODY_BYTES, status,
};
use crate::warm::{Factory, Fresh, Warm};
use crate::wasmtime_error::IntoAnyhow;
use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use opentelemetry::KeyValue;
use opentelemetry::trace::SpanKind;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, ComponentExportIndex, Instance, InstancePre, Type, Val};

/// One exported function, ready to call.
struct RpcFunction {
    index: ComponentExportIndex,
    /// The export it belongs to (found by name in a tapped graph).
    export: String,
    name: String,
    params: Vec<Type>,
    results: Vec<Type>,
}

/// An `rpc` component served to other jobs.
pub struct RpcComponent {
    label: String,
    instances: Arc<Warm<Instance>>,
    /// Functions other jobs may call, by `<interface>#<function>`.
    functions: HashMap<String, RpcFunction>,
    slots: InstanceSlots,
    /// The callee's own bound on a call: `min(call_timeout_ms, request_timeout_ms)`.
    own_deadline: Duration,
    limits: Limits,
    settings: StoreSettings,
    /// The tapped variant, run by a sampled share of calls.
    tapped: Option<(Arc<Taps>, Arc<TappedGraph>)>,
}

impl RpcComponent {
    /// Indexes the functions of the graph of `label` that other jobs call —
    /// those of the exports in `callable` — and starts keeping spare
    /// instances of it (inside a tokio runtime). `call_timeout` is the
    /// component's `call_timeout_ms`.
    pub fn new(
        label: &str,
        component: &Component,
        pre: InstancePre<HostState>,
        exports: &[crate::app::ItemShape],
        callable: &BTreeSet<String>,
        call_timeout: Duration,
        settings: StoreSettings,
    ) -> Result<Self> {
        let mut functions = HashMap::new();
        for export in exports
            .iter()
            .filter(|e| e.is_interface && callable.contains(&e.name))
        {
            let Some((_, interface)) = component.get_export(None, &export.name) else {
                continue;
            };
            for name in &export.functions {
                let Some((item, index)) = component.get_export(Some(&interface), name.as_str())
                else {
                    continue;
                };
                let ComponentItem::ComponentFunc(ty) = item else {
                    continue;
                };
                functions.insert(
                    format!("{}#{name}", export.name),
                    RpcFunction {
                        index,
                        export: export.name.clone(),
                        name: name.clone(),
                        params: ty.params().map(|(_, t)| t).collect(),
                        results: ty.results().collect(),
                    },
                );
            }
        }
        let for_instances = settings.clone();
        let factory: Factory<Fresh<Instance>> = Arc::new(move || {
            let pre = pre.clone();
            let settings = for_instances.clone();
            Box::pin(async move {
                let mut store = new_store(pre.engine(), &settings);
                let instance = pre.instantiate_async(&mut store).await.anyhow()?;
                Ok((store, instance))
            })
        });
        let limits = settings.limits;
        Ok(RpcComponent {
            label: label.to_string(),
            instances: Warm::new(label, factory, settings.metrics.warm_spares.clone()),
            functions,
            slots: InstanceSlots::new(&limits),
            own_deadline: call_timeout.min(limits.request_timeout),
            limits,
            settings,
            tapped: None,
        })
    }

    /// The same component, running `tapped` for a sampled share of calls
    /// ([`crate::observe::tapped`]).
    pub fn with_tapped(mut self, tapped: Option<(Arc<Taps>, Arc<TappedGraph>)>) -> Self {
        self.tapped = tapped;
        self
    }
}

/// The components served on one listener.
pub struct RpcServer {
    revision: String,
    components: BTreeMap<String, Arc<RpcComponent>>,
    limits: Limits,
    authentication: Authentication,
    replay: ReplayGuard,
    refusals: AtomicU64,
    drain: Drain,
    metrics: Arc<Metrics>,
}

impl RpcServer {
    /// A server for `components`, answering only callers of `revision`
    /// that authenticate per `authentication`, with the job's listener limits.
    pub fn new(
        revision: &str,
        components: Vec<Arc<RpcComponent>>,
        limits: Limits,
        authentication: Authentication,
        drain: Drain,
        metrics: Arc<Metrics>,
    ) -> Self {
        RpcServer {
            revision: revision.to_string(),
            limits,
            components: components
                .into_iter()
                .map(|c| (c.label.clone(), c))
                .collect(),
            authentication,
            replay: ReplayGuard::default(),
            refusals: AtomicU64::new(0),
            drain,
            metrics,
        }
    }

    /// The job's listener limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Labels served here.
    pub fn labels(&self) -> Vec<String> {
        self.components.keys().cloned().collect()
    }
}

/// Accepts connections on `listener` until the drain begins, serving them
/// on `threads`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    server: Arc<RpcServer>,
    threads: Arc<ServingThreads>,
) {
    let limits = server.limits;
    let what = format!("rpc: {}", server.labels().join(", "));
    let drain = server.drain.clone();
    accept_loop(listener, threads, limits, what, drain, move |request| {
        let server = server.clone();
        async move { handle(&server, request).await }
    })
    .await;
}

pub(crate) type Response = hyper::Response<Full<Bytes>>;

/// An answer to an authenticated caller: it carries this host's revision.
fn reply(server: &RpcServer, status: u16, content_type: &'static str, body: Bytes) -> Response {
    let mut response = bare(status, content_type, body);
    if let Ok(revision) = hyper::header::HeaderValue::from_str(&server.revision) {
        response.headers_mut().insert(HEADER_REVISION, revision);
    }
    response
}

/// An answer that says nothing about this host.
fn bare(status: u16, content_type: &'static str, body: Bytes) -> Response {
    let mut response = hyper::Response::new(Full::new(body));
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    response
}

fn error(server: &RpcServer, status: u16, message: String) -> Response {
    reply(
        server,
        status,
        "text/plain; charset=utf-8",
        Bytes::from(message + "\n"),
    )
}

fn unauthenticated() -> Response {
    bare(
        status::UNAUTHENTICATED,
        "text/plain; charset=utf-8",
        Bytes::from_static(b"unauthenticated\n"),
    )
}

fn header<'a, B>(request: &'a hyper::Request<B>, name: &str) -> Option<&'a str> {
    request.headers().get(name).and_then(|v| v.to_str().ok())
}

pub(crate) async fn handle<B>(server: &RpcServer, request: hyper::Request<B>) -> Response
where
    B: hyper::body::Body,
    B::Error: Into<body::BoxError>,
{
    let id = RequestId::new();
    let started = Instant::now();
    let path = request.uri().path().to_string();
    let Some(label) = path.strip_prefix(CALL_PATH).filter(|l| !l.is_empty()) else {
        return bare(
            status::NOT_FOUND,
            "text/plain; charset=utf-8",
            Bytes::from_static(b"not found\n"),
        );
    };
    if request.method() != hyper::Method::POST {
        return bare(
            405,
            "text/plain; charset=utf-8",
            Bytes::from_static(b"amimono calls use POST\n"),
        );
    }
    let fields = CallFields {
        revision: header(&request, HEADER_REVISION).unwrap_or(""),
        label,
        function: header(&request, HEADER_FUNCTION).unwrap_or(""),
        deadline_ms: header(&request, HEADER_DEADLINE_MS).unwrap_or(""),
        caller: header(&request, HEADER_CALLER).unwrap_or(""),
    };
    let verified = match &server.authentication {
        Authentication::Disabled => None,
        Authentication::Key(key) => {
            match auth::verify(
                key,
                &fields,
                header(&request, auth::HEADER_AUTH),
                &server.replay,
            ) {
                Ok(verified) => Some(verified),
                Err(e) => {
                    // Sampled: a flood of forged calls must not flood the log.
                    let count = server.refusals.fetch_add(1, Ordering::Relaxed);
                    if count < 10 || count.is_multiple_of(1000) {
                        tracing::warn!(request_id = %id, component = label, reason = %e, refused = count + 1, "refused an unauthenticated call");
                    }
                    return unauthenticated();
                }
            }
        }
    };
    if fields.revision.is_empty() {
        return error(
            server,
            status::MALFORMED,
            format!("malformed RPC request: the `{HEADER_REVISION}` header is missing"),
        );
    }
    if fields.revision != server.revision {
        server.metrics.revision_refused();
        tracing::warn!(caller_revision = fields.revision, revision = %server.revision, component = label, "refused a call from another revision");
        return error(
            server,
            status::REVISION_MISMATCH,
            format!(
                "revision mismatch: the caller runs revision {}, this host runs revision {}",
                fields.revision, server.revision
            ),
        );
    }
    let Some(component) = server.components.get(label) else {
        return error(
            server,
            status::NOT_FOUND,
            format!("this job does not serve component `{label}` to other jobs"),
        );
    };
    if fields.function.is_empty() {
        return error(
            server,
            status::MALFORMED,
            format!("malformed RPC request: the `{HEADER_FUNCTION}` header is missing"),
        );
    }
    let Some(function) = component.functions.get(fields.function) else {
        return error(
            server,
            status::NOT_FOUND,
            format!(
                "component `{label}` serves no function `{}` to other jobs",
                fields.function
            ),
        );
    };
    let asked = match fields.deadline_ms {
        "" => None,
        ms => match ms.parse::<u64>() {
            Ok(ms) => Some(Duration::from_millis(ms)),
            Err(_) => {
                return error(
                    server,
                    status::MALFORMED,
                    format!(
                        "malformed RPC request: `{HEADER_DEADLINE_MS}` is not a number of milliseconds"
                    ),
                );
            }
        },
    };
    // The callee's own bound caps whatever the caller asks for.
    let allowed = asked.map_or(component.own_deadline, |d| d.min(component.own_deadline));
    let deadline = started + allowed;
    let caller = fields.caller.to_string();
    let function_name = function.name.clone();
    let mut span = component.settings.metrics.tracing.start(
        &TraceContext::from_headers(request.headers()),
        SpanKind::Server,
        || {
            (
                format!("{label}.{function_name}").into(),
                vec![
                    KeyValue::new(COMPONENT_ATTRIBUTE, label.to_string()),
                    KeyValue::new("rpc.system", "amimono"),
                    KeyValue::new("rpc.service", function.export.clone()),
                    KeyValue::new("rpc.method", function_name.clone()),
                    KeyValue::new("amimono.caller", caller.clone()),
                ],
            )
        },
    );
    if server.drain.is_stopping() {
        return error(
            server,
            status::UNAVAILABLE,
            "the callee's job is shutting down".into(),
        );
    }
    let declared = body::declared_length(request.headers());
    let body_until = deadline.min(started + component.limits.body_timeout);
    let read = body::read(
        request.into_body(),
        declared,
        MAX_BODY_BYTES as u64,
        body_until,
        &component.settings.budget,
    )
    .await;
    let read = match read {
        Ok(read) => read,
        Err(e) => {
            let (code, message) = match &e {
                BodyError::TooLarge { .. } => (
                    status::TOO_LARGE,
                    format!("the request body exceeds {MAX_BODY_BYTES} bytes"),
                ),
                BodyError::TimedOut { .. } => (
                    status::MALFORMED,
                    "the request body did not arrive in time".to_string(),
                ),
                BodyError::OverBudget => (
                    status::UNAVAILABLE,
                    "the callee's memory budget cannot hold the request body now".to_string(),
                ),
                BodyError::Client(e) => (
                    status::MALFORMED,
                    format!("malformed RPC request: cannot read the body: {e}"),
                ),
            };
            tracing::info!(request_id = %id, component = %label, function = %function_name, %caller, error = %e, "remote call refused before it ran");
            return error(server, code, message);
        }
    };
    if let Some(verified) = &verified
        && let Err(e) = verified.check_body(&read.bytes)
    {
        tracing::warn!(request_id = %id, component = label, reason = %e, "refused an unauthenticated call");
        return unauthenticated();
    }
    let params = match codec::decode_values(&read.bytes, &function.params) {
        Ok(params) => params,
        Err(e) => {
            return error(
                server,
                status::MALFORMED,
                format!("malformed RPC request for `{label}.{function_name}`: {e}"),
            );
        }
    };
    // The arguments are decoded: the raw bytes are no longer needed.
    drop(read);
    let permit = match component.slots.acquire(deadline).await {
        Ok(permit) => permit,
        Err(e) => {
            tracing::warn!(request_id = %id, component = %label, function = %function_name, %caller, error = %e, "remote call refused: no instance of the component is free");
            return error(
                server,
                status::UNAVAILABLE,
                format!("`{label}` is busy: {e}"),
            );
        }
    };
    let in_use = InUse::new(&component.settings.metrics.instances_in_use);
    let outcome = tokio::time::timeout_at(
        deadline,
        invoke(component, function, &params, span.context()),
    )
    .await;
    drop(permit);
    drop(in_use);
    match &outcome {
        Err(_) => span.fail("deadline exceeded"),
        Ok(Err(_)) => span.fail("the component failed"),
        Ok(Ok(_)) => {}
    }
    let trace_id = span.context().trace_id();
    match outcome {
        Err(_) => {
            tracing::warn!(request_id = %id, component = %label, function = %function_name, %caller, trace_id = trace_id.as_deref(), ms = allowed.as_millis() as u64, "remote call stopped at its deadline");
            error(
                server,
                status::DEADLINE_EXCEEDED,
                format!(
                    "`{label}.{function_name}` did not finish within its deadline of {} ms",
                    allowed.as_millis()
                ),
            )
        }
        Ok(Err(e)) => {
            component.settings.metrics.traps.inc();
            tracing::error!(request_id = %id, component = %label, function = %function_name, %caller, trace_id = trace_id.as_deref(), error = %format!("{e:#}"), "remote call failed");
            error(
                server,
                status::CALLEE_FAILED,
                format!("component `{label}` failed in `{function_name}` (request id {id})"),
            )
        }
        Ok(Ok(results)) => {
            let mut out = Vec::with_capacity(64);
            match codec::encode_values(&results, &function.results, &mut out) {
                Ok(()) => {
                    tracing::debug!(request_id = %id, component = %label, function = %function_name, %caller, "served a remote call");
                    reply(server, 200, CONTENT_TYPE, Bytes::from(out))
                }
                Err(e) => {
                    tracing::error!(request_id = %id, component = %label, function = %function_name, error = %e, "cannot encode the results of a remote call");
                    error(
                        server,
                        status::CALLEE_FAILED,
                        format!(
                            "cannot encode the results of `{label}.{function_name}` (request id {id})"
                        ),
                    )
                }
            }
        }
    }
}

/// Runs one call in a fresh instance of the component's graph. Dropping the
/// future (deadline, or the caller went away) drops the instance.
async fn invoke(
    component: &RpcComponent,
    function: &RpcFunction,
    params: &[Val],
    trace: &TraceContext,
) -> Result<Vec<Val>> {
    if let Some((_, graph)) = component.tapped.as_ref().filter(|(t, _)| t.sample()) {
        return invoke_tapped(graph, function, params, trace).await;
    }
    let (mut store, instance) = component
        .instances
        .take()
        .await
        .with_context(|| format!("instantiating the graph of `{}`", component.label))?;
    store.data_mut().set_trace(trace.clone());
    let _replenish = Replenish(component.instances.clone());
    let func = instance
        .get_func(&mut store, function.index)
        .with_context(|| format!("`{}` is not a function", function.name))?;
    let mut results = vec![Val::Bool(false); function.results.len()];
    let outcome = func.call_async(&mut store, params, &mut results).await;
    // Tearing the instance down runs once this task yields, i.e. after the
    // answer is written.
    tokio::spawn(async move { drop(store) });
    outcome.anyhow()?;
    Ok(results)
}

/// Runs one call in a fresh instance of the component's tapped graph.
async fn invoke_tapped(
    graph: &TappedGraph,
    function: &RpcFunction,
    params: &[Val],
    trace: &TraceContext,
) -> Result<Vec<Val>> {
    let mut store = new_store(graph.pre.engine(), &graph.settings);
    store.data_mut().set_trace(trace.clone());
    let instance = graph.pre.instantiate_async(&mut store).await.anyhow()?;
    let func =
        crate::observe::tapped::lookup(&mut store, &instance, &function.export, &function.name)?;
    let mut results = vec![Val::Bool(false); function.results.len()];
    func.call_async(&mut store, params, &mut results)
        .await
        .anyhow()?;
    Ok(results)
}

/// Makes the next spare once a call is done with its instance.
struct Replenish(Arc<Warm<Instance>>);

impl Drop for Replenish {
    fn drop(&mut self) {
        self.0.replenish();
    }
}
