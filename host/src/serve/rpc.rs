//! Serving a job's `rpc` components to other jobs: `POST
//! /amimono/v1/call/<label>` (see [`crate::remote::protocol`] and
//! `docs/protocol.md`). Components sharing an address share a listener and
//! are told apart by label. Each call gets a fresh instance of the
//! component's graph, like an HTTP request; the caller's revision must equal
//! this host's (else 409), and the caller's deadline stops the call.

use crate::host_state::{HostState, StoreSettings, new_store};
use crate::limits::Limits;
use crate::remote::codec;
use crate::remote::protocol::{
    CALL_PATH, CONTENT_TYPE, DEFAULT_DEADLINE, HEADER_CALLER, HEADER_DEADLINE_MS, HEADER_FUNCTION,
    HEADER_REVISION, MAX_BODY_BYTES, status,
};
use crate::serve::listener::accept_loop;
use crate::serve::threads::ServingThreads;
use crate::warm::{Factory, Warm};
use crate::wasmtime_error::IntoAnyhow;
use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, ComponentExportIndex, Instance, InstancePre, Type, Val};

/// One exported function, ready to call.
struct RpcFunction {
    index: ComponentExportIndex,
    name: String,
    params: Vec<Type>,
    results: Vec<Type>,
}

/// An `rpc` component served to other jobs.
pub struct RpcComponent {
    label: String,
    instances: Arc<Warm<Instance>>,
    functions: HashMap<String, RpcFunction>,
    gate: Arc<Semaphore>,
}

impl RpcComponent {
    /// Indexes every exported function of the graph of `label`
    /// (`<interface>#<function>`) and starts keeping spare instances of it
    /// (inside a tokio runtime).
    pub fn new(
        label: &str,
        component: &Component,
        pre: InstancePre<HostState>,
        exports: &[crate::app::ItemShape],
        settings: StoreSettings,
        gate: Arc<Semaphore>,
    ) -> Result<Self> {
        let mut functions = HashMap::new();
        for export in exports.iter().filter(|e| e.is_interface) {
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
                        name: name.clone(),
                        params: ty.params().map(|(_, t)| t).collect(),
                        results: ty.results().collect(),
                    },
                );
            }
        }
        let factory: Factory<Instance> = Arc::new(move || {
            let pre = pre.clone();
            let settings = settings.clone();
            Box::pin(async move {
                let mut store = new_store(pre.engine(), &settings);
                let instance = pre.instantiate_async(&mut store).await.anyhow()?;
                Ok((store, instance))
            })
        });
        Ok(RpcComponent {
            label: label.to_string(),
            instances: Warm::new(label, factory),
            functions,
            gate,
        })
    }
}

/// The components served on one listener.
pub struct RpcServer {
    revision: String,
    components: BTreeMap<String, Arc<RpcComponent>>,
    limits: Limits,
}

impl RpcServer {
    /// A server for `components`, answering only callers of `revision`,
    /// with the job's header limits.
    pub fn new(revision: &str, components: Vec<RpcComponent>, limits: Limits) -> Self {
        RpcServer {
            revision: revision.to_string(),
            limits,
            components: components
                .into_iter()
                .map(|c| (c.label.clone(), Arc::new(c)))
                .collect(),
        }
    }

    /// Labels served here.
    pub fn labels(&self) -> Vec<String> {
        self.components.keys().cloned().collect()
    }
}

/// Accepts connections on `listener` forever, serving them on `threads`.
pub async fn serve(listener: TcpListener, server: Arc<RpcServer>, threads: Arc<ServingThreads>) {
    let limits = server.limits;
    let what = format!("rpc: {}", server.labels().join(", "));
    accept_loop(listener, threads, limits, what, move |request| {
        let server = server.clone();
        async move { handle(&server, request).await }
    })
    .await;
}

type Response = hyper::Response<Full<Bytes>>;

fn reply(server: &RpcServer, status: u16, content_type: &'static str, body: Bytes) -> Response {
    let mut response = hyper::Response::new(Full::new(body));
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    if let Ok(revision) = hyper::header::HeaderValue::from_str(&server.revision) {
        headers.insert(HEADER_REVISION, revision);
    }
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

fn header<'a>(request: &'a hyper::Request<hyper::body::Incoming>, name: &str) -> Option<&'a str> {
    request.headers().get(name).and_then(|v| v.to_str().ok())
}

async fn handle(server: &RpcServer, request: hyper::Request<hyper::body::Incoming>) -> Response {
    let path = request.uri().path().to_string();
    let Some(label) = path.strip_prefix(CALL_PATH).filter(|l| !l.is_empty()) else {
        return error(
            server,
            status::NOT_FOUND,
            format!("not an amimono call: expected POST {CALL_PATH}<label>, got {path}"),
        );
    };
    if request.method() != hyper::Method::POST {
        return error(
            server,
            405,
            format!("amimono calls use POST, not {}", request.method()),
        );
    }
    let Some(revision) = header(&request, HEADER_REVISION) else {
        return error(
            server,
            status::MALFORMED,
            format!("malformed RPC request: the `{HEADER_REVISION}` header is missing"),
        );
    };
    if revision != server.revision {
        tracing::warn!(caller_revision = revision, revision = %server.revision, component = label, "refused a call from another revision");
        return error(
            server,
            status::REVISION_MISMATCH,
            format!(
                "revision mismatch: the caller runs revision {revision}, this host runs revision {}",
                server.revision
            ),
        );
    }
    let Some(component) = server.components.get(label) else {
        return error(
            server,
            status::NOT_FOUND,
            format!(
                "this job does not serve component `{label}` (it serves: {})",
                server.labels().join(", ")
            ),
        );
    };
    let Some(function_name) = header(&request, HEADER_FUNCTION) else {
        return error(
            server,
            status::MALFORMED,
            format!("malformed RPC request: the `{HEADER_FUNCTION}` header is missing"),
        );
    };
    let Some(function) = component.functions.get(function_name) else {
        let mut known: Vec<&str> = component.functions.keys().map(String::as_str).collect();
        known.sort_unstable();
        return error(
            server,
            status::NOT_FOUND,
            format!(
                "component `{label}` exports no function `{function_name}` (it exports: {})",
                known.join(", ")
            ),
        );
    };
    let deadline = match header(&request, HEADER_DEADLINE_MS).map(str::parse::<u64>) {
        None => DEFAULT_DEADLINE,
        Some(Ok(ms)) => Duration::from_millis(ms),
        Some(Err(_)) => {
            return error(
                server,
                status::MALFORMED,
                format!(
                    "malformed RPC request: `{HEADER_DEADLINE_MS}` is not a number of milliseconds"
                ),
            );
        }
    };
    let caller = header(&request, HEADER_CALLER)
        .unwrap_or("unknown")
        .to_string();
    let body = match Limited::new(request.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(e) => {
            let too_large = e
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some();
            return if too_large {
                error(
                    server,
                    status::TOO_LARGE,
                    format!("the request body exceeds {MAX_BODY_BYTES} bytes"),
                )
            } else {
                error(
                    server,
                    status::MALFORMED,
                    format!("malformed RPC request: cannot read the body: {e}"),
                )
            };
        }
    };
    let params = match codec::decode_values(&body, &function.params) {
        Ok(params) => params,
        Err(e) => {
            return error(
                server,
                status::MALFORMED,
                format!("malformed RPC request for `{label}.{}`: {e}", function.name),
            );
        }
    };
    match tokio::time::timeout(deadline, invoke(component, function, &params)).await {
        Err(_) => {
            tracing::warn!(component = %label, function = %function.name, %caller, ms = deadline.as_millis() as u64, "remote call stopped at its deadline");
            error(
                server,
                status::DEADLINE_EXCEEDED,
                format!(
                    "`{label}.{}` did not finish within the caller's deadline of {} ms",
                    function.name,
                    deadline.as_millis()
                ),
            )
        }
        Ok(Err(e)) => {
            tracing::error!(component = %label, function = %function.name, %caller, error = %format!("{e:#}"), "remote call failed");
            error(
                server,
                status::CALLEE_FAILED,
                format!(
                    "component `{label}` failed in `{}`: {}",
                    function.name,
                    e.root_cause()
                ),
            )
        }
        Ok(Ok(results)) => {
            let mut out = Vec::with_capacity(64);
            match codec::encode_values(&results, &function.results, &mut out) {
                Ok(()) => reply(server, 200, CONTENT_TYPE, Bytes::from(out)),
                Err(e) => error(
                    server,
                    status::CALLEE_FAILED,
                    format!(
                        "cannot encode the results of `{label}.{}`: {e}",
                        function.name
                    ),
                ),
            }
        }
    }
}

/// Runs one call in a fresh instance of the component's graph.
async fn invoke(
    component: &RpcComponent,
    function: &RpcFunction,
    params: &[Val],
) -> Result<Vec<Val>> {
    let permit = component
        .gate
        .clone()
        .acquire_owned()
        .await
        .context("the instance gate is closed")?;
    let (mut store, instance) = component
        .instances
        .take()
        .await
        .with_context(|| format!("instantiating the graph of `{}`", component.label))?;
    let func = instance
        .get_func(&mut store, function.index)
        .with_context(|| format!("`{}` is not a function", function.name))?;
    let mut results = vec![Val::Bool(false); function.results.len()];
    let outcome = func.call_async(&mut store, params, &mut results).await;
    // Tearing the instance down and making the next spare run once this
    // task yields, i.e. after the answer is written.
    let instances = component.instances.clone();
    tokio::spawn(async move {
        drop(store);
        drop(permit);
        instances.replenish();
    });
    outcome.anyhow()?;
    Ok(results)
}
