//! An embedder's own tower service (an axum `Router` nesting
//! [`super::service::HttpService`]s beside native handlers, say) served the
//! way `amimono run` serves its listeners: the shared accept loop
//! ([`super::listener`]) with the app's connection limits, each connection
//! on one of the job's per-core serving threads for good, and the job's
//! drain on shutdown. [`crate::Listeners::service`] adds one.
//!
//! Why not `axum::serve`: on tokio's work-stealing runtime the spawned
//! guest task, its response channel and the spare-instance task wake the
//! other worker several times per request; measured in the benchmark suite
//! (EMBED) the same `Router` then answers about 0.65–0.7 of the requests/s
//! it answers here. Both work; this is the fast one.

use super::body::BoxError;
use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::{Body, Incoming};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// The response body of an embedder's service, boxed.
pub type EmbedderBody = UnsyncBoxBody<Bytes, BoxError>;

/// The future of an embedder's answer.
type Answer = Pin<Box<dyn Future<Output = hyper::Response<EmbedderBody>> + Send>>;

/// An embedder's service behind one type: request in, answer out.
#[derive(Clone)]
pub struct EmbedderService(Arc<dyn Fn(hyper::Request<Incoming>) -> Answer + Send + Sync>);

impl std::fmt::Debug for EmbedderService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EmbedderService")
    }
}

impl EmbedderService {
    /// Wraps `service`: each request gets a clone of it, called once it is
    /// ready (as `tower::ServiceExt::oneshot` does).
    pub fn new<S, B>(service: S) -> EmbedderService
    where
        S: tower_service::Service<
                hyper::Request<Incoming>,
                Response = hyper::Response<B>,
                Error = Infallible,
            > + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send,
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        EmbedderService(Arc::new(move |request| {
            let mut service = service.clone();
            Box::pin(async move {
                let ready = std::future::poll_fn(|cx| service.poll_ready(cx)).await;
                let Ok(()) = ready;
                let Ok(response) = service.call(request).await;
                response.map(|body| body.map_err(Into::into).boxed_unsync())
            })
        }))
    }

    /// Answers `request`.
    pub fn answer(&self, request: hyper::Request<Incoming>) -> Answer {
        (self.0)(request)
    }
}

/// Accepts connections on `listener` until the drain begins, answering
/// them with `service` on `threads`, under the connection limits of
/// `limits` (header-read and send timeouts, header count, connections).
pub async fn serve(
    listener: tokio::net::TcpListener,
    service: EmbedderService,
    limits: crate::limits::Limits,
    threads: Arc<super::threads::ServingThreads>,
    drain: super::drain::Drain,
) {
    let what = match listener.local_addr() {
        Ok(address) => format!("embedder service on {address}"),
        Err(_) => "embedder service".to_string(),
    };
    super::listener::accept_loop(listener, threads, limits, what, drain, move |request| {
        service.answer(request)
    })
    .await;
}
