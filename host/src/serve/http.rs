//! Serving an HTTP-bound component: one listener per component, one fresh
//! instance of its graph per request (pooling allocator, `InstancePre`, made
//! ahead by [`crate::warm`]), so a request never sees another's memory and a
//! trap fails only its own request.
//!
//! Each request, in order:
//! 1. hop-by-hop headers (and those `Connection` names) are removed;
//! 2. the body is read whole, before any instance is taken ([`super::body`]):
//!    413 above the limit, 408 when it does not arrive within the body
//!    timeout, 503 when the job's memory budget cannot hold it;
//! 3. an instance slot of this component is taken ([`super::slots`]): 503
//!    with `Retry-After` when none frees up within the queue timeout;
//! 4. the guest runs in its own task, until its `request_timeout` at most
//!    (504 if it set no response by then; its response body is cut off if
//!    it is still streaming); a client that goes away cancels it.
//!
//! A failure is answered with a generic body and a request id
//! ([`super::reply`]); the detail is logged with the same id and the
//! component's label. A trap after the guest set its response is logged too,
//! and the response body is aborted, so the client sees a broken body rather
//! than a clean, truncated answer.

use super::body::{self, BodyError};
use super::budget::MemoryBudget;
use super::drain::Drain;
use super::listener::accept_loop;
use super::reply::{Refusal, RequestId, refusal};
use super::slots::{InUse, InstanceSlots};
use super::threads::ServingThreads;
use crate::host_state::{HostState, StoreSettings, new_store};
use crate::observe::tapped::{TappedGraph, Taps};
use crate::observe::traces::{ActiveSpan, COMPONENT_ATTRIBUTE, TraceContext};
use crate::warm::{Factory, Fresh, Warm};
use crate::wasmtime_error::IntoAnyhow;
use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, SizeHint};
use opentelemetry::KeyValue;
use opentelemetry::trace::SpanKind;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context as TaskContext, Poll};
use tokio::task::AbortHandle;
use tokio::time::{Instant, Sleep};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::{Proxy, ProxyPre};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// An HTTP-bound component ready to serve.
pub struct HttpComponent {
    /// The component's label.
    pub label: Arc<str>,
    /// Fresh instances of its graph, with the `wasi:http/proxy` export resolved.
    instances: Arc<Warm<Proxy>>,
    /// Limits and grants of its graph's instances, limits of its listener.
    settings: StoreSettings,
    /// This component's instance slots.
    slots: InstanceSlots,
    /// Request tasks are tracked for draining.
    drain: Drain,
    /// The tapped variant, run by a sampled share of requests.
    tapped: Option<Tapped>,
}

impl HttpComponent {
    /// Wraps the pre-instantiated graph of `label` and starts keeping spare
    /// instances of it (inside a tokio runtime).
    pub fn new(
        label: &str,
        pre: wasmtime::component::InstancePre<HostState>,
        settings: StoreSettings,
        drain: Drain,
        tapped: Option<(Arc<Taps>, Arc<TappedGraph>)>,
    ) -> Result<Self> {
        let tapped = match tapped {
            None => None,
            Some((taps, graph)) => Some(Tapped {
                taps,
                pre: ProxyPre::new(graph.pre.clone()).anyhow().with_context(|| {
                    format!(
                        "the tapped graph of `{label}` does not export `wasi:http/incoming-handler`"
                    )
                })?,
                settings: graph.settings.clone(),
            }),
        };
        let pre = ProxyPre::new(pre).anyhow().with_context(|| {
            format!("component `{label}` does not export a usable `wasi:http/incoming-handler`")
        })?;
        let for_instances = settings.clone();
        let factory: Factory<Fresh<Proxy>> = Arc::new(move || {
            let pre = pre.clone();
            let settings = for_instances.clone();
            Box::pin(async move {
                let mut store = new_store(pre.engine(), &settings);
                let proxy = pre.instantiate_async(&mut store).await.anyhow()?;
                Ok((store, proxy))
            })
        });
        Ok(HttpComponent {
            label: Arc::from(label),
            instances: Warm::new(label, factory, settings.metrics.warm_spares.clone()),
            slots: InstanceSlots::new(&settings.limits),
            settings,
            drain,
            tapped,
        })
    }

    /// The limits of its instances and requests.
    pub fn limits(&self) -> &crate::limits::Limits {
        &self.settings.limits
    }

    fn budget(&self) -> &Arc<MemoryBudget> {
        &self.settings.budget
    }
}

/// The tapped variant of a component's graph ([`crate::observe::tapped`]).
struct Tapped {
    taps: Arc<Taps>,
    pre: ProxyPre<HostState>,
    settings: StoreSettings,
}

impl HttpComponent {
    /// A fresh instance: of the tapped graph for a sampled request, else a
    /// spare (or one made now).
    async fn instance(&self) -> Result<(wasmtime::Store<HostState>, Proxy)> {
        if let Some(tapped) = self.tapped.as_ref().filter(|t| t.taps.sample()) {
            let mut store = new_store(tapped.pre.engine(), &tapped.settings);
            let proxy = tapped.pre.instantiate_async(&mut store).await.anyhow()?;
            return Ok((store, proxy));
        }
        self.instances.take().await
    }
}

/// Accepts connections on `listener` until the drain begins, serving
/// `component` on `threads`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    component: Arc<HttpComponent>,
    threads: Arc<ServingThreads>,
) {
    let limits = component.settings.limits;
    let what = component.label.to_string();
    let drain = component.drain.clone();
    accept_loop(listener, threads, limits, what, drain, move |request| {
        let component = component.clone();
        async move { handle(&component, request).await }
    })
    .await;
}

/// Headers that concern one connection only (RFC 9110 §7.6.1). A guest
/// must never see them on a request (a proxying guest would forward them)
/// nor send them on a response: framing and connection management belong to
/// the host (wasmtime-wasi-http refuses most of them already; `te` and
/// `trailer` it lets through).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
];

/// Removes hop-by-hop headers and every header `Connection` names.
pub fn strip_hop_by_hop(headers: &mut hyper::HeaderMap) {
    let named: Vec<String> = headers
        .get_all(hyper::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect();
    for name in named.iter().map(String::as_str).chain(HOP_BY_HOP) {
        headers.remove(name);
    }
}

/// How a request's guest task ended (shared with its response body).
struct TaskOutcome(AtomicU8);

impl TaskOutcome {
    const RUNNING: u8 = 0;
    const RETURNED: u8 = 1;
    const FAILED: u8 = 2;
    const TIMED_OUT: u8 = 3;

    fn get(&self) -> u8 {
        self.0.load(Ordering::Acquire)
    }

    fn set(&self, outcome: u8) {
        self.0.store(outcome, Ordering::Release);
    }
}

/// Aborts the guest's task when dropped, unless disarmed.
struct AbortOnDrop(Option<AbortHandle>);

impl AbortOnDrop {
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take() {
            handle.abort();
        }
    }
}

/// The body of an answer: the host's own, or the guest's, guarded.
pub enum ResponseBody {
    /// A body the host made.
    Host(Full<Bytes>),
    /// The guest's body, under its request's deadline and outcome.
    Guest(Box<GuestBody>),
}

/// A guest's response body: cut off at the request's deadline, aborted if
/// the guest traps before it is complete; dropping it before it is complete
/// (the client went away) cancels the guest. The request's server span ends
/// with it: a streamed answer's span covers the streaming, and a body that
/// fails after its head marks the span failed.
pub struct GuestBody {
    inner: HyperOutgoingBody,
    span: Option<ActiveSpan>,
    outcome: Arc<TaskOutcome>,
    guard: AbortOnDrop,
    deadline: Pin<Box<Sleep>>,
    id: RequestId,
    label: Arc<str>,
    done: bool,
}

/// The error type of response bodies (wasmtime-wasi-http's).
type GuestBodyError = wasmtime_wasi_http::Error;

impl GuestBody {
    fn fail(&mut self, message: &str) -> Poll<Option<Result<Frame<Bytes>, GuestBodyError>>> {
        self.done = true;
        if let Some(mut span) = self.span.take() {
            span.fail(message.to_string());
        }
        if let Some(handle) = self.guard.0.take() {
            handle.abort();
        }
        Poll::Ready(Some(Err(wasmtime_wasi_http::Error::InternalError(Some(
            message.to_string(),
        )))))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = GuestBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let body = match self.get_mut() {
            ResponseBody::Host(full) => {
                return Pin::new(full)
                    .poll_frame(cx)
                    .map_err(|never| match never {});
            }
            ResponseBody::Guest(body) => body.as_mut(),
        };
        if body.done {
            return Poll::Ready(None);
        }
        if body.deadline.as_mut().poll(cx).is_ready() {
            tracing::warn!(request_id = %body.id, component = %body.label, "response body cut off: the request ran past its request_timeout_ms");
            return body.fail("the response did not finish in time");
        }
        match Pin::new(&mut body.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                let outcome = body.outcome.get();
                if outcome == TaskOutcome::FAILED || outcome == TaskOutcome::TIMED_OUT {
                    // Logged by the task, with this request id.
                    return body.fail("the component failed while sending the response");
                }
                body.done = true;
                // The answer is complete: so is its span.
                body.span = None;
                // The guest may go on after its body (within its deadline).
                body.guard.disarm();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                tracing::warn!(request_id = %body.id, component = %body.label, error = %e, "the component's response body failed");
                body.fail("the response body failed")
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Host(full) => full.is_end_stream(),
            ResponseBody::Guest(body) => body.done,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Host(full) => full.size_hint(),
            ResponseBody::Guest(body) => body.inner.size_hint(),
        }
    }
}

fn host_answer(kind: Refusal, id: RequestId) -> hyper::Response<ResponseBody> {
    refusal(kind, id).map(ResponseBody::Host)
}

/// Runs one request through a fresh instance of the component's graph,
/// counted in the component's ingress metrics.
pub(crate) async fn handle<B>(
    component: &HttpComponent,
    request: hyper::Request<B>,
) -> hyper::Response<ResponseBody>
where
    B: Body,
    B::Error: Into<body::BoxError>,
{
    let started = Instant::now();
    let metrics = &component.settings.metrics;
    let mut span = metrics.tracing.start(
        &TraceContext::from_headers(request.headers()),
        SpanKind::Server,
        || {
            (
                format!("{} {}", request.method(), component.label).into(),
                vec![
                    KeyValue::new(COMPONENT_ATTRIBUTE, component.label.clone()),
                    KeyValue::new("http.request.method", request.method().to_string()),
                    KeyValue::new("url.path", request.uri().path().to_string()),
                ],
            )
        },
    );
    let mut response = run_request(component, request, span.context()).await;
    let status = response.status().as_u16();
    span.attribute(|| KeyValue::new("http.response.status_code", i64::from(status)));
    if status >= 500 {
        span.fail(format!("answered {status}"));
    }
    metrics.http_answered(status, started.elapsed());
    // A guest's body may still be streaming: the span ends with it.
    if let ResponseBody::Guest(body) = response.body_mut() {
        body.span = Some(span);
    }
    response
}

async fn run_request<B>(
    component: &HttpComponent,
    request: hyper::Request<B>,
    trace: &TraceContext,
) -> hyper::Response<ResponseBody>
where
    B: Body,
    B::Error: Into<body::BoxError>,
{
    let id = RequestId::new();
    let label = &component.label;
    let limits = component.settings.limits;
    let started = Instant::now();
    let deadline = started + limits.request_timeout;
    if component.drain.is_stopping() {
        return host_answer(Refusal::ShuttingDown, id);
    }
    let (mut parts, incoming) = request.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    let declared = body::declared_length(&parts.headers);
    let body_until = deadline.min(started + limits.body_timeout);
    let read = match body::read(
        incoming,
        declared,
        limits.max_body_bytes,
        body_until,
        component.budget(),
    )
    .await
    {
        Ok(read) => read,
        Err(e) => {
            let kind = match &e {
                BodyError::TooLarge { limit } => Refusal::TooLarge(*limit),
                BodyError::TimedOut { .. } => Refusal::BodyTimeout,
                BodyError::OverBudget => Refusal::Busy,
                BodyError::Client(_) => Refusal::BadRequest,
            };
            tracing::info!(request_id = %id, component = %label, error = %e, status = kind.status(), "request refused before it ran");
            return host_answer(kind, id);
        }
    };
    let permit = match component.slots.acquire(deadline).await {
        Ok(permit) => permit,
        Err(e) => {
            tracing::warn!(request_id = %id, component = %label, error = %e, max_instances = limits.max_instances, "request refused: no instance of the component is free");
            return host_answer(Refusal::Busy, id);
        }
    };
    let (mut store, proxy) = match component.instance().await {
        Ok(instance) => instance,
        Err(e) => {
            tracing::error!(request_id = %id, component = %label, error = %format!("{e:#}"), "cannot instantiate the component's graph");
            return host_answer(Refusal::Busy, id);
        }
    };
    store.data_mut().set_trace(trace.clone());
    let trace_id = trace.trace_id();
    let trailers = read.trailers;
    let guest_body = Full::new(read.bytes)
        .map_err(|never| match never {})
        .with_trailers(async move { trailers.map(Ok::<_, wasmtime_wasi_http::Error>) });
    let request = hyper::Request::from_parts(parts, guest_body);
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let prepared = store
        .data_mut()
        .http()
        .new_incoming_request(Scheme::Http, request)
        .and_then(|incoming| {
            let outparam = store.data_mut().http().new_response_outparam(sender)?;
            Ok((incoming, outparam))
        });
    let (incoming, outparam) = match prepared {
        Ok(prepared) => prepared,
        Err(e) => {
            tracing::info!(request_id = %id, component = %label, error = %format!("{e:#}"), "request refused: it cannot be given to the component");
            return host_answer(Refusal::BadRequest, id);
        }
    };
    // The guest runs in its own task: it may keep streaming the body after
    // it has set the response. Its instance, slot and body memory are given
    // back when the task ends (or is aborted), and the next spare is made.
    let outcome = Arc::new(TaskOutcome(AtomicU8::new(TaskOutcome::RUNNING)));
    let task_outcome = outcome.clone();
    let instances = component.instances.clone();
    let task_label = label.clone();
    let body_memory = read.reservation;
    let traps = component.settings.metrics.traps.clone();
    let in_use = InUse::new(&component.settings.metrics.instances_in_use);
    let task = tokio::spawn(component.drain.track(async move {
        let _replenish = Replenish(instances);
        let _body_memory = body_memory;
        let _permit = permit;
        let _in_use = in_use;
        let call = proxy
            .wasi_http_incoming_handler()
            .call_handle(&mut store, incoming, outparam);
        match tokio::time::timeout_at(deadline, call).await {
            Ok(Ok(())) => task_outcome.set(TaskOutcome::RETURNED),
            Ok(Err(e)) => {
                traps.inc();
                task_outcome.set(TaskOutcome::FAILED);
                tracing::error!(request_id = %id, component = %task_label, trace_id = trace_id.as_deref(), error = %format!("{e:#}"), "the component trapped while handling a request");
            }
            Err(_) => {
                task_outcome.set(TaskOutcome::TIMED_OUT);
                tracing::warn!(request_id = %id, component = %task_label, trace_id = trace_id.as_deref(), ms = limits.request_timeout.as_millis() as u64, "request stopped at its request_timeout_ms");
            }
        }
        // Let the connection write the answer first: tearing the instance
        // down (its memory reset) is not the client's wait.
        tokio::task::yield_now().await;
        drop(store);
    }));
    // Dropped with this future if the client goes away first.
    let mut guard = AbortOnDrop(Some(task.abort_handle()));
    let answer = tokio::time::timeout_at(deadline, receiver).await;
    match answer {
        Ok(Ok(Ok(mut response))) => {
            for name in HOP_BY_HOP {
                response.headers_mut().remove(name);
            }
            let guard = AbortOnDrop(guard.0.take());
            response.map(|inner| {
                ResponseBody::Guest(Box::new(GuestBody {
                    inner,
                    span: None,
                    outcome,
                    guard,
                    deadline: Box::pin(tokio::time::sleep_until(deadline)),
                    id,
                    label: label.clone(),
                    done: false,
                }))
            })
        }
        Ok(Ok(Err(code))) => {
            tracing::error!(request_id = %id, component = %label, error = ?code, "the component answered with an error code");
            host_answer(Refusal::Internal, id)
        }
        Ok(Err(_)) => match outcome.get() {
            TaskOutcome::TIMED_OUT => host_answer(Refusal::Timeout, id),
            TaskOutcome::FAILED => host_answer(Refusal::Internal, id),
            state => {
                let what = if state == TaskOutcome::RETURNED {
                    "the component returned without setting a response"
                } else {
                    "the component dropped its response-outparam without setting a response"
                };
                tracing::error!(request_id = %id, component = %label, "{what}");
                host_answer(Refusal::Internal, id)
            }
        },
        Err(_) => {
            tracing::warn!(request_id = %id, component = %label, ms = limits.request_timeout.as_millis() as u64, "no response within request_timeout_ms: answered 504");
            host_answer(Refusal::Timeout, id)
        }
    }
}

/// Makes the next spare when a request's task ends, however it ends.
struct Replenish(Arc<Warm<Proxy>>);

impl Drop for Replenish {
    fn drop(&mut self) {
        self.0.replenish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_removed() {
        let mut headers = hyper::HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, X-Secret-Hop"),
            ("x-secret-hop", "1"),
            ("te", "trailers"),
            ("keep-alive", "timeout=5"),
            ("x-kept", "yes"),
        ] {
            headers.insert(
                hyper::header::HeaderName::from_static(name),
                hyper::header::HeaderValue::from_static(value),
            );
        }
        strip_hop_by_hop(&mut headers);
        let left: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["x-kept"]);
    }
}
