//! The accept loop every listener of a job shares: keep-alive HTTP/1.1 with
//! the job's header limits and header-read timeout, writes that may not stall
//! longer than the send timeout ([`TimedIo`]), at most `max_connections`
//! connections at once, one task per connection, each served on one of the
//! job's [`ServingThreads`]. On [`Drain::begin`] the loop stops accepting
//! (the socket closes) and each connection closes after its request in
//! flight.

use super::drain::Drain;
use super::threads::ServingThreads;
use super::timed_io::TimedIo;
use crate::limits::Limits;
use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use tokio::net::TcpListener;

/// Accepts connections on `listener` until `drain` begins, answering each
/// request with `answer`. `what` names the listener in logs.
pub async fn accept_loop<A, F, B>(
    listener: TcpListener,
    threads: Arc<ServingThreads>,
    limits: Limits,
    what: String,
    drain: Drain,
    answer: A,
) where
    A: Fn(hyper::Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = hyper::Response<B>> + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let open = Arc::new(AtomicUsize::new(0));
    let refused = AtomicU64::new(0);
    loop {
        let accepted = tokio::select! {
            biased;
            () = drain.stopping() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(listener = %what, error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        if open.load(Ordering::Acquire) >= limits.max_connections {
            // Closed at once; logged for the first and then every 1000th.
            let count = refused.fetch_add(1, Ordering::Relaxed);
            if count.is_multiple_of(1000) {
                tracing::warn!(listener = %what, %peer, max_connections = limits.max_connections, refused = count + 1, "connection refused: the listener serves max_connections already");
            }
            drop(stream);
            continue;
        }
        let counted = OpenConnection::new(&open);
        let answer = answer.clone();
        let connection_drain = drain.clone();
        let threads = threads.clone();
        let what = what.clone();
        tokio::spawn(drain.track(async move {
            let _ = stream.set_nodelay(true);
            // Hand the connection over once its first request has arrived:
            // a serving thread busy with a CPU-bound guest then serves it
            // at its next scheduling round, without waiting a further epoch
            // tick for the bytes. A client that sends nothing in time holds
            // no serving thread at all.
            let arrived = tokio::select! {
                arrived = tokio::time::timeout(limits.header_read_timeout, stream.readable()) => arrived.is_ok(),
                () = connection_drain.stopping() => false,
            };
            if !arrived {
                tracing::debug!(%peer, "connection closed: no request within header_read_timeout_ms, or draining");
                return;
            }
            // The stream moves to the serving thread's own reactor.
            let stream = match stream.into_std() {
                Ok(stream) => stream,
                Err(e) => {
                    tracing::warn!(listener = %what, error = %e, "cannot hand a connection over");
                    return;
                }
            };
            let drain = connection_drain.clone();
            threads.spawn(drain.track(serve_connection(
                stream,
                peer,
                limits,
                connection_drain,
                answer,
                counted,
            )));
        }));
    }
}

/// Serves one connection on the serving thread that runs this.
async fn serve_connection<A, F, B>(
    stream: std::net::TcpStream,
    peer: std::net::SocketAddr,
    limits: Limits,
    connection_drain: Drain,
    answer: A,
    counted: OpenConnection,
) where
    A: Fn(hyper::Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = hyper::Response<B>> + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    {
        let _counted = counted;
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
        let io = TimedIo::new(TokioIo::new(stream), limits.send_timeout);
        let connection = builder.serve_connection(io, service);
        tokio::pin!(connection);
        let outcome = tokio::select! {
            outcome = connection.as_mut() => outcome,
            () = connection_drain.stopping() => {
                // Finish the request in flight, then close.
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        };
        if let Err(e) = outcome {
            tracing::debug!(%peer, error = %e, "connection ended with an error");
        }
    }
}

/// One open connection of a listener, counted until dropped.
struct OpenConnection(Arc<AtomicUsize>);

impl OpenConnection {
    fn new(open: &Arc<AtomicUsize>) -> OpenConnection {
        open.fetch_add(1, Ordering::AcqRel);
        OpenConnection(open.clone())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
