//! [`Job::serve`]: every listener of a job served on one single-threaded
//! runtime per core, workers supervised, until the shutdown future resolves;
//! then the drain: no new connections, requests and calls in flight finish
//! within the grace period.

use super::prepared::Job;
use crate::manifest::BindingType;
use crate::serve::embedder::EmbedderService;
use crate::serve::threads::ServingThreads;
use anyhow::Result;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// How long `serve` waits, after the drain, for its listeners to close.
const LISTENERS_CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The listeners a job serves on: one per HTTP component, and listeners
/// for calls from other jobs, each serving a group of rpc components.
#[derive(Debug, Default)]
pub struct Listeners {
    http: BTreeMap<String, TcpListener>,
    rpc: Vec<(Vec<String>, TcpListener)>,
    services: Vec<(TcpListener, EmbedderService)>,
    admin: Option<TcpListener>,
}

impl Listeners {
    /// No listeners yet.
    pub fn new() -> Listeners {
        Listeners::default()
    }

    /// Serves HTTP component `label` on `listener`.
    pub fn http(mut self, label: &str, listener: TcpListener) -> Self {
        self.http.insert(label.to_string(), listener);
        self
    }

    /// Serves calls from other jobs to the rpc components `labels` on
    /// `listener` (components of one address share one).
    pub fn rpc(mut self, labels: Vec<String>, listener: TcpListener) -> Self {
        self.rpc.push((labels, listener));
        self
    }

    /// Serves the admin endpoints on `listener`: `GET /healthz` (alive) and
    /// `GET /readyz` (200 once the job takes traffic, 503 from the moment
    /// the drain begins; see [`Job::is_ready`]). It keeps answering while
    /// the job drains.
    pub fn admin(mut self, listener: TcpListener) -> Self {
        self.admin = Some(listener);
        self
    }

    /// Serves the embedder's own `service` on `listener` (an axum `Router`
    /// nesting [`Job::http_service`]s beside native handlers, say), the way
    /// the job's own listeners are served: each connection on one of the
    /// job's per-core serving threads, the app's connection limits
    /// (`header_read_timeout_ms`, `send_timeout_ms`, `max_headers`,
    /// `max_connections`), and the job's drain when it stops. Faster than
    /// `axum::serve` on tokio's multi-thread runtime (see
    /// `docs/embedding.md`); a handler's `tokio::spawn` runs on the
    /// connection's thread.
    pub fn service<S, B>(mut self, listener: TcpListener, service: S) -> Self
    where
        S: tower_service::Service<
                hyper::Request<hyper::body::Incoming>,
                Response = hyper::Response<B>,
                Error = std::convert::Infallible,
            > + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send,
        B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<crate::serve::body::BoxError>,
    {
        self.services
            .push((listener, EmbedderService::new(service)));
        self
    }
}

/// How [`Job::serve`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Stopped {
    /// Every request and call in flight finished.
    Drained,
    /// The grace period ended, or `stop_now` resolved, with some still in flight.
    Undrained,
}

/// The job's workers, running; aborted when dropped.
#[derive(Debug)]
pub struct Workers(Vec<JoinHandle<()>>);

impl Drop for Workers {
    fn drop(&mut self) {
        for worker in &self.0 {
            worker.abort();
        }
    }
}

impl Job {
    /// Serves `listeners` and runs the job's workers until `shutdown`
    /// resolves, then drains for the job's shutdown grace period.
    pub async fn serve(
        &self,
        listeners: Listeners,
        shutdown: impl Future<Output = ()>,
    ) -> Result<Stopped> {
        self.serve_until(listeners, shutdown, std::future::pending())
            .await
    }

    /// [`serve`](Self::serve), with the drain cut short when `stop_now`
    /// resolves (a second signal).
    pub async fn serve_until(
        &self,
        listeners: Listeners,
        shutdown: impl Future<Output = ()>,
        stop_now: impl Future<Output = ()>,
    ) -> Result<Stopped> {
        let threads = Arc::new(ServingThreads::per_core()?);
        let mut servers = Vec::new();
        for (label, listener) in listeners.http {
            let component = self.http_service(&label)?.component();
            servers.push(tokio::spawn(crate::serve::http::serve(
                listener,
                component,
                threads.clone(),
            )));
        }
        for (labels, listener) in listeners.rpc {
            let server = self.rpc_server(&labels)?;
            servers.push(tokio::spawn(crate::serve::rpc::serve(
                listener,
                server,
                threads.clone(),
            )));
        }
        for (listener, service) in listeners.services {
            servers.push(tokio::spawn(crate::serve::embedder::serve(
                listener,
                service,
                self.app_limits(),
                threads.clone(),
                self.drain_handle().clone(),
            )));
        }
        if let Some(listener) = listeners.admin {
            servers.push(tokio::spawn(crate::serve::admin::serve(
                listener,
                self.readiness().clone(),
                self.metrics().clone(),
                self.app_limits(),
                threads.clone(),
            )));
        }
        let workers = self.start_workers()?;
        let becoming_ready = tokio::spawn(crate::serve::admin::become_ready(
            self.callees(),
            crate::serve::admin::READY_WAIT,
            self.readiness().clone(),
        ));
        shutdown.await;
        // Not ready first: probes stop routing here while the requests in
        // flight finish.
        becoming_ready.abort();
        self.readiness().set_draining();
        let drain = self.drain_handle();
        tracing::info!(job = %self.name(), in_flight = drain.in_flight(), grace_ms = self.shutdown_grace().as_millis() as u64, "draining: no new connections; requests in flight finish");
        drop(workers);
        drain.begin();
        // The listeners close as the accept loops end.
        let drained = tokio::select! {
            () = drain.finished() => true,
            () = tokio::time::sleep(self.shutdown_grace()) => false,
            () = stop_now => false,
        };
        for server in &servers {
            server.abort();
        }
        // An aborted task is dropped by the runtime later: wait for it, so
        // every listener is closed when `serve` returns (an embedder may bind
        // the address again at once). Accept loops end at their next poll.
        let closed = async {
            for server in servers {
                let _ = server.await;
            }
        };
        if tokio::time::timeout(LISTENERS_CLOSE_WAIT, closed)
            .await
            .is_err()
        {
            tracing::warn!(job = %self.name(), "a listener was still open {} ms after the drain", LISTENERS_CLOSE_WAIT.as_millis());
        }
        if drained {
            tracing::info!(job = %self.name(), "stopped: every request in flight finished");
            Ok(Stopped::Drained)
        } else {
            tracing::warn!(job = %self.name(), in_flight = drain.in_flight(), "stopped before every request in flight finished (grace period over, or a second signal)");
            Ok(Stopped::Undrained)
        }
    }

    /// Starts the job's workers (components with no binding that export
    /// `wasi:cli/run`), each restarted with backoff when it fails; they stop
    /// when the returned value is dropped. [`serve`](Self::serve) does this.
    pub fn start_workers(&self) -> Result<Workers> {
        let mut workers = Vec::new();
        for label in self.members_with(BindingType::None) {
            let Some(run_export) = self.worker_export(&label) else {
                continue;
            };
            let graph = self.graph(&label)?;
            let settings = self.settings(&label, &graph);
            workers.push(tokio::spawn(crate::serve::worker::supervise(
                label.clone(),
                graph.component.clone(),
                graph.pre.clone(),
                run_export,
                settings,
            )));
        }
        Ok(Workers(workers))
    }
}
