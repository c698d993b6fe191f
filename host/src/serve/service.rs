//! The job's components as `tower::Service`s, for servers that are not
//! `amimono run`: [`HttpService`] answers HTTP requests with an HTTP
//! component, [`RpcService`] answers calls from other jobs. Both run the
//! same request path as the host's own listeners ([`super::http`],
//! [`super::rpc`]); what the host's accept loop adds per connection (the
//! header-read timeout, the send timeout, `max_connections`) belongs to the
//! embedder's server. The header-count limit is checked here too.

use super::body::BoxError;
use super::http::{HttpComponent, ResponseBody};
use super::reply::{Refusal, RequestId, refusal};
use super::rpc::RpcServer;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Body;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// The future of a service's answer.
pub type ServiceFuture<R> = Pin<Box<dyn Future<Output = Result<R, Infallible>> + Send>>;

/// An HTTP component as a tower service, from [`crate::Job::http_service`]:
/// a fresh instance of its graph per request, the component's limits, a
/// trap answered 500 with a request id. Cloning is cheap (shared).
#[derive(Clone)]
pub struct HttpService {
    component: Arc<HttpComponent>,
}

impl std::fmt::Debug for HttpService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpService")
            .field("component", &self.component.label)
            .finish()
    }
}

impl HttpService {
    pub(crate) fn new(component: Arc<HttpComponent>) -> HttpService {
        HttpService { component }
    }

    pub(crate) fn component(&self) -> Arc<HttpComponent> {
        self.component.clone()
    }

    /// The component's label.
    pub fn label(&self) -> &str {
        &self.component.label
    }
}

/// A refusal for more header fields than `limit`, if so.
fn too_many_headers<B>(
    request: &http::Request<B>,
    limit: usize,
) -> Option<http::Response<Full<Bytes>>> {
    (request.headers().len() > limit).then(|| {
        let id = RequestId::new();
        tracing::info!(request_id = %id, headers = request.headers().len(), max_headers = limit, "request refused: too many header fields");
        refusal(Refusal::TooManyHeaders(limit), id)
    })
}

impl<B> tower_service::Service<http::Request<B>> for HttpService
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = http::Response<ResponseBody>;
    type Error = Infallible;
    type Future = ServiceFuture<Self::Response>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let component = self.component.clone();
        Box::pin(async move {
            if let Some(refused) = too_many_headers(&request, component.limits().max_headers) {
                return Ok(refused.map(ResponseBody::Host));
            }
            Ok(super::http::handle(&component, request).await)
        })
    }
}

/// The remote-call endpoint of a job as a tower service, from
/// [`crate::Job::rpc_service`]: calls from other jobs (of the same
/// revision, signed with the cluster key) to its rpc components.
#[derive(Clone)]
pub struct RpcService {
    server: Arc<RpcServer>,
}

impl std::fmt::Debug for RpcService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcService")
            .field("components", &self.server.labels())
            .finish()
    }
}

impl RpcService {
    pub(crate) fn new(server: Arc<RpcServer>) -> RpcService {
        RpcService { server }
    }

    /// The components it serves.
    pub fn labels(&self) -> Vec<String> {
        self.server.labels()
    }
}

impl<B> tower_service::Service<http::Request<B>> for RpcService
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = http::Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = ServiceFuture<Self::Response>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let server = self.server.clone();
        Box::pin(async move {
            if let Some(refused) = too_many_headers(&request, server.limits().max_headers) {
                return Ok(refused);
            }
            Ok(super::rpc::handle(&server, request).await)
        })
    }
}
