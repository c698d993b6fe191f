//! Serving an HTTP-bound component: one listener per component, one fresh
//! instance of its graph per request (pooling allocator, `InstancePre`, made
//! ahead by [`crate::warm`]), so a request never sees another's memory and a
//! trap fails only its own request (answered 500 and logged with the
//! component's label).

use crate::host_state::{HostState, StoreSettings, new_store};
use crate::serve::listener::accept_loop;
use crate::serve::threads::ServingThreads;
use crate::warm::{Factory, Warm};
use crate::wasmtime_error::IntoAnyhow;
use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::{Proxy, ProxyPre};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// An HTTP-bound component ready to serve.
pub struct HttpComponent {
    /// The component's label.
    pub label: String,
    /// Fresh instances of its graph, with the `wasi:http/proxy` export resolved.
    instances: Arc<Warm<Proxy>>,
    /// Limits and grants of its graph's instances, limits of its listener.
    settings: StoreSettings,
    /// Permits for instances alive at once in the job.
    gate: Arc<Semaphore>,
}

impl HttpComponent {
    /// Wraps the pre-instantiated graph of `label` and starts keeping spare
    /// instances of it (inside a tokio runtime).
    pub fn new(
        label: &str,
        pre: wasmtime::component::InstancePre<HostState>,
        settings: StoreSettings,
        gate: Arc<Semaphore>,
    ) -> Result<Self> {
        let pre = ProxyPre::new(pre).anyhow().with_context(|| {
            format!("component `{label}` does not export a usable `wasi:http/incoming-handler`")
        })?;
        let for_instances = settings.clone();
        let factory: Factory<Proxy> = Arc::new(move || {
            let pre = pre.clone();
            let settings = for_instances.clone();
            Box::pin(async move {
                let mut store = new_store(pre.engine(), &settings);
                let proxy = pre.instantiate_async(&mut store).await.anyhow()?;
                Ok((store, proxy))
            })
        });
        Ok(HttpComponent {
            label: label.to_string(),
            instances: Warm::new(label, factory),
            settings,
            gate,
        })
    }
}

/// Accepts connections on `listener` forever, serving `component` on `threads`.
pub async fn serve(
    listener: TcpListener,
    component: Arc<HttpComponent>,
    threads: Arc<ServingThreads>,
) {
    let limits = component.settings.limits;
    let what = component.label.clone();
    accept_loop(listener, threads, limits, what, move |request| {
        let component = component.clone();
        async move { handle(&component, request).await }
    })
    .await;
}

/// Runs one request through a fresh instance of the component's graph.
async fn handle(
    component: &HttpComponent,
    request: hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<HyperOutgoingBody> {
    match try_handle(component, request).await {
        Ok(response) => response,
        Err(e) => {
            tracing::error!(component = %component.label, error = %format!("{e:#}"), "request failed");
            let message = format!(
                "component `{}` failed while handling the request: {}\n",
                component.label,
                e.root_cause()
            );
            error_response(500, message)
        }
    }
}

async fn try_handle(
    component: &HttpComponent,
    request: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<HyperOutgoingBody>> {
    let max_body = component.settings.limits.max_body_bytes;
    let declared = request
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > max_body) {
        return Ok(error_response(
            413,
            format!("the request body is larger than the limit of {max_body} bytes\n"),
        ));
    }
    // A body without a declared length is cut off at the limit: the guest
    // sees the read fail.
    let request = request.map(move |body| {
        Limited::new(body, usize::try_from(max_body).unwrap_or(usize::MAX)).map_err(
            move |e| match e.downcast::<hyper::Error>() {
                Ok(e) => wasmtime_wasi_http::Error::Hyper(*e),
                Err(_) => wasmtime_wasi_http::Error::HttpRequestBodySize(Some(max_body)),
            },
        )
    });
    let permit = component
        .gate
        .clone()
        .acquire_owned()
        .await
        .context("the instance gate is closed")?;
    let (mut store, proxy) = component
        .instances
        .take()
        .await
        .with_context(|| format!("instantiating the graph of `{}`", component.label))?;
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let incoming = store
        .data_mut()
        .http()
        .new_incoming_request(Scheme::Http, request)?;
    let outparam = store.data_mut().http().new_response_outparam(sender)?;
    // The guest runs in its own task: it may keep streaming the body after
    // it has set the response. Once it is done, the next spare is made.
    let instances = component.instances.clone();
    let task = tokio::spawn(async move {
        let outcome = proxy
            .wasi_http_incoming_handler()
            .call_handle(&mut store, incoming, outparam)
            .await;
        // Let the connection write the answer first: tearing the instance
        // down (its memory reset) is not the client's wait.
        tokio::task::yield_now().await;
        drop(store);
        drop(permit);
        instances.replenish();
        outcome
    });
    match receiver.await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(code)) => Err(anyhow::anyhow!(
            "the component answered with error {code:?}"
        )),
        Err(_) => {
            let e = match task.await {
                Ok(Ok(())) => anyhow::anyhow!("the component returned without setting a response"),
                Ok(Err(e)) => anyhow::Error::from(e),
                Err(e) => anyhow::Error::from(e).context("the request task failed"),
            };
            Err(e)
        }
    }
}

/// A plain-text response made by the host itself.
pub fn error_response(status: u16, message: String) -> hyper::Response<HyperOutgoingBody> {
    let body = Full::new(Bytes::from(message))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut response = hyper::Response::new(body);
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
