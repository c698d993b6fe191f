//! The admin listener of a job: what an orchestrator (Kubernetes probes, a
//! Compose healthcheck, `amimono up`) asks a process, and nothing else.
//!
//! - `GET /healthz`: 200 while the process serves at all (liveness).
//! - `GET /readyz`: 200 once the job may take traffic (readiness): its
//!   graphs are prepared and every listener bound (a [`crate::Job`] exists
//!   and [`crate::Job::serve`] runs), and the jobs it calls accept
//!   connections (at least one address of each: one replica is enough) —
//!   waited for at most [`READY_WAIT`] after start, then ready
//!   anyway with a warning, so jobs that call each other never wait on each
//!   other. Checked at start only: a callee that goes away later is the
//!   remote-call client's to handle (retries, circuit breaker), not a
//!   reason to pull every caller out of its Service at once. 503 from the
//!   moment the drain begins (SIGTERM), while requests in flight finish.
//!
//! - `GET /metrics`: the job's metrics in the Prometheus text format
//!   ([`crate::observe::metrics`]).
//!
//! The listener answers only these paths, `GET` and `HEAD`; the probes'
//! bodies are fixed words (`ok`, `ready`, `not ready: starting`, `not ready:
//! draining`). Metrics name components and methods, never values: the
//! admin listener belongs on the cluster's network (a Pod port Prometheus
//! scrapes), not behind a public Service. It takes at most
//! [`MAX_ADMIN_CONNECTIONS`] connections and keeps serving during the
//! drain, so probes see the job turn not-ready.

use super::drain::Drain;
use super::threads::ServingThreads;
use crate::limits::Limits;
use crate::observe::metrics::Metrics;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

/// How long a job waits at start for the jobs it calls to accept
/// connections before it reports ready anyway.
pub const READY_WAIT: Duration = Duration::from_secs(30);

/// Connections the admin listener serves at once.
pub const MAX_ADMIN_CONNECTIONS: usize = 64;

/// How long one connection attempt to a callee may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How often unreachable callees are tried again while starting.
const RETRY_EVERY: Duration = Duration::from_millis(200);

/// Where a job is in its life, as its readiness probe reports it.
#[derive(Debug, Default)]
pub struct Readiness(AtomicU8);

impl Readiness {
    const STARTING: u8 = 0;
    const READY: u8 = 1;
    const DRAINING: u8 = 2;

    /// Starting: not ready yet.
    pub fn new() -> Arc<Readiness> {
        Arc::new(Readiness::default())
    }

    /// Ready, unless the drain has begun.
    pub fn set_ready(&self) {
        let _ = self.0.compare_exchange(
            Self::STARTING,
            Self::READY,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    /// Draining: not ready, for good.
    pub fn set_draining(&self) {
        self.0.store(Self::DRAINING, Ordering::Release);
    }

    /// Whether the job takes traffic.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire) == Self::READY
    }

    /// The probe's status and body.
    fn answer(&self) -> (StatusCode, &'static str) {
        match self.0.load(Ordering::Acquire) {
            Self::READY => (StatusCode::OK, "ready\n"),
            Self::DRAINING => (StatusCode::SERVICE_UNAVAILABLE, "not ready: draining\n"),
            _ => (StatusCode::SERVICE_UNAVAILABLE, "not ready: starting\n"),
        }
    }
}

/// A job this one calls: a callee's label and the `host:port` of each of
/// its URLs (each replica's, or one name for the job).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callee {
    /// The callee component's label.
    pub label: String,
    /// Where its job listens (from its base URLs).
    pub authorities: Vec<String>,
}

/// Marks `readiness` ready once every callee accepts a TCP connection on at
/// least one of its addresses (a name is tried at each address it resolves
/// to), or once `wait` has passed (with a warning naming those that do not).
pub async fn become_ready(callees: Vec<Callee>, wait: Duration, readiness: Arc<Readiness>) {
    let until = tokio::time::Instant::now() + wait;
    let mut pending = callees;
    loop {
        let mut still = Vec::new();
        for callee in pending {
            if !accepts_somewhere(&callee.authorities).await {
                still.push(callee);
            }
        }
        pending = still;
        if pending.is_empty() {
            break;
        }
        if tokio::time::Instant::now() >= until {
            let unreachable: Vec<String> = pending
                .iter()
                .map(|c| format!("`{}` at {}", c.label, c.authorities.join(", ")))
                .collect();
            tracing::warn!(wait_ms = wait.as_millis() as u64, unreachable = %unreachable.join(", "), "ready although components this job calls do not accept connections yet");
            break;
        }
        tokio::time::sleep(RETRY_EVERY).await;
    }
    readiness.set_ready();
    tracing::info!("ready");
}

/// Whether one of `authorities` accepts a TCP connection.
async fn accepts_somewhere(authorities: &[String]) -> bool {
    for authority in authorities {
        let connect = tokio::net::TcpStream::connect(authority.as_str());
        if let Ok(Ok(_)) = tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            return true;
        }
    }
    false
}

/// The admin listener's answer to `request`.
pub fn answer(
    request: &Request<Incoming>,
    readiness: &Readiness,
    metrics: &Metrics,
) -> Response<Full<Bytes>> {
    let text = |status: StatusCode, body: Bytes, content_type: &'static str| {
        let mut response = Response::new(Full::new(body));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static(content_type),
        );
        headers.insert(
            hyper::header::CACHE_CONTROL,
            hyper::header::HeaderValue::from_static("no-store"),
        );
        response
    };
    let reply = |status: StatusCode, body: &'static str| {
        text(
            status,
            Bytes::from_static(body.as_bytes()),
            "text/plain; charset=utf-8",
        )
    };
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = reply(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        response.headers_mut().insert(
            hyper::header::ALLOW,
            hyper::header::HeaderValue::from_static("GET, HEAD"),
        );
        return response;
    }
    match request.uri().path() {
        "/healthz" => reply(StatusCode::OK, "ok\n"),
        "/readyz" => {
            let (status, body) = readiness.answer();
            reply(status, body)
        }
        "/metrics" => text(
            StatusCode::OK,
            Bytes::from(metrics.render()),
            crate::observe::metrics::CONTENT_TYPE,
        ),
        _ => reply(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// Serves the admin endpoints on `listener` until aborted (it outlives the
/// job's drain), under the connection limits of `limits`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    readiness: Arc<Readiness>,
    metrics: Arc<Metrics>,
    mut limits: Limits,
    threads: Arc<ServingThreads>,
) {
    limits.max_connections = limits.max_connections.min(MAX_ADMIN_CONNECTIONS);
    let what = match listener.local_addr() {
        Ok(address) => format!("admin on {address}"),
        Err(_) => "admin".to_string(),
    };
    // A drain of its own that never begins: probes are answered while the
    // job drains, and do not hold its drain up.
    super::listener::accept_loop(
        listener,
        threads,
        limits,
        what,
        Drain::new(),
        move |request| {
            let response = answer(&request, &readiness, &metrics);
            async move { response }
        },
    )
    .await;
}

/// `host:port` of base URL `url` (`http://host[:port]`), if it has one.
pub fn authority_of(url: &str) -> Option<String> {
    let uri = url.parse::<hyper::Uri>().ok()?;
    let host = uri.host()?;
    let port = uri.port_u16().unwrap_or(80);
    Some(format!("{host}:{port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_goes_starting_ready_draining_and_never_back() {
        let readiness = Readiness::new();
        assert_eq!(readiness.answer().0, StatusCode::SERVICE_UNAVAILABLE);
        readiness.set_ready();
        assert_eq!(readiness.answer(), (StatusCode::OK, "ready\n"));
        readiness.set_draining();
        readiness.set_ready();
        assert_eq!(
            readiness.answer(),
            (StatusCode::SERVICE_UNAVAILABLE, "not ready: draining\n")
        );
    }

    #[tokio::test]
    async fn one_listening_replica_makes_a_callee_ready() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let up = listener.local_addr().unwrap().to_string();
        let down = {
            let gone = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            gone.local_addr().unwrap().to_string()
        };
        assert!(accepts_somewhere(&[down.clone(), up]).await);
        assert!(!accepts_somewhere(&[down]).await);
        let readiness = Readiness::new();
        let callee = Callee {
            label: "greeter".into(),
            authorities: vec![listener.local_addr().unwrap().to_string()],
        };
        become_ready(vec![callee], Duration::from_secs(5), readiness.clone()).await;
        assert!(readiness.is_ready());
    }

    #[test]
    fn authorities_come_from_base_urls() {
        assert_eq!(
            authority_of("http://backend.ns.svc.cluster.local:9000").as_deref(),
            Some("backend.ns.svc.cluster.local:9000")
        );
        assert_eq!(
            authority_of("http://10.0.0.1").as_deref(),
            Some("10.0.0.1:80")
        );
        assert_eq!(authority_of("not a url"), None);
    }
}
