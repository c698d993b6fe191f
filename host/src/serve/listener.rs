//! The accept loop every listener of a job shares: keep-alive HTTP/1.1 with
//! the job's header limits and header-read timeout, one task per connection,
//! each connection served on one of the job's [`ServingThreads`].

use super::threads::ServingThreads;
use crate::limits::Limits;
use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Accepts connections on `listener` forever, answering each request with
/// `answer`. `what` names the listener in logs.
pub async fn accept_loop<A, F, B>(
    listener: TcpListener,
    threads: Arc<ServingThreads>,
    limits: Limits,
    what: String,
    answer: A,
) where
    A: Fn(hyper::Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = hyper::Response<B>> + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(listener = %what, error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        // The stream moves to the serving thread's own reactor.
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(e) => {
                tracing::warn!(listener = %what, error = %e, "cannot hand a connection over");
                continue;
            }
        };
        let answer = answer.clone();
        threads.spawn(async move {
            let stream = match tokio::net::TcpStream::from_std(stream) {
                Ok(stream) => stream,
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "cannot serve a connection");
                    return;
                }
            };
            let service = hyper::service::service_fn(move |request| {
                let response = answer(request);
                async move { Ok::<_, std::convert::Infallible>(response.await) }
            });
            let mut builder = http1::Builder::new();
            builder
                .keep_alive(true)
                .max_headers(limits.max_headers)
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            if let Err(e) = builder
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}
