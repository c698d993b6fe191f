//! `amimono dashboard` and `amimono up --dashboard`: a web page showing a
//! running app — its jobs and components, the live call graph with
//! per-edge rates, errors, latencies and bytes ([`graph`]), placement
//! advice ([`advice`]), recent traces as waterfalls ([`spans`]: the
//! dashboard is an OTLP/HTTP receiver) and recent log lines per component.
//!
//! The page is rendered on the server with askama templates ([`page`]):
//! compile-time-checked, HTML-escaped, and no JavaScript, so nothing runs
//! in the browser and nothing is fetched from elsewhere (the dashboard
//! works offline, where operators often are); it reloads itself every few
//! seconds. `GET /api/state` gives the same data as JSON.
//!
//! Metrics come from every job's admin listener (`GET /metrics`, scraped
//! every [`SCRAPE_EVERY`]), traces from the jobs' OTLP exporters
//! (`POST /v1/traces`), log lines from `amimono up`, which relays its jobs'
//! lines. The dashboard shows log lines and trace names: it listens on
//! loopback only unless told otherwise (`--public`).

pub mod advice;
pub mod graph;
pub mod page;
pub mod snapshot;
pub mod spans;

use crate::app::App;
use crate::bindings_file::Bindings;
use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use page::{ComponentCard, ComponentLogs, DashboardPage, JobCard, LogLineView};
use serde::Serialize;
use snapshot::Snapshot;
use spans::SpanStore;
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often every job's metrics are read.
pub const SCRAPE_EVERY: Duration = Duration::from_secs(2);
/// How long one scrape may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(1);
/// The window rates are computed over.
const WINDOW: Duration = Duration::from_secs(60);
/// Most bytes of a job's `/metrics` read.
const MAX_METRICS_BYTES: usize = 8 << 20;
/// Most bytes of an OTLP export accepted.
const MAX_EXPORT_BYTES: usize = 8 << 20;
/// How long a client may take to send an export's body.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once.
const MAX_CONNECTIONS: usize = 64;
/// Log lines kept per component.
const LOG_LINES: usize = 50;
/// Longest log message kept, in bytes.
const MAX_LOG_MESSAGE: usize = 2000;
/// Traces listed.
const LISTED_TRACES: usize = 20;

/// One admin listener to scrape.
#[derive(Debug, Clone)]
pub struct ScrapeTarget {
    /// The job (and replica, `job#i`).
    pub job: String,
    /// Its admin address.
    pub admin: SocketAddr,
}

/// One log line as kept.
#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    time: String,
    level: String,
    message: String,
    trace_id: String,
}

/// What the dashboard knows of the app, and what it has measured.
pub struct Dashboard {
    app: App,
    targets: Vec<ScrapeTarget>,
    snapshots: Mutex<VecDeque<Snapshot>>,
    spans: Mutex<SpanStore>,
    logs: Mutex<BTreeMap<String, VecDeque<LogLine>>>,
}

/// The JSON of `GET /api/state`.
#[derive(Serialize)]
struct State {
    app: String,
    revision: String,
    jobs: BTreeMap<String, Vec<String>>,
    edges: Vec<graph::EdgeStats>,
    methods: Vec<graph::EdgeStats>,
    advice: Vec<advice::Advice>,
    traces: Vec<String>,
    unreachable: BTreeMap<String, String>,
}

impl Dashboard {
    /// A dashboard of `app` (its chosen layout), its jobs' admin listeners
    /// read from `bindings`.
    pub fn new(app: App, bindings: &Bindings) -> Result<Arc<Dashboard>> {
        let mut targets = Vec::new();
        for (job, spec) in &app.manifest.jobs {
            let Some(admin) = bindings.admin.get(job) else {
                continue;
            };
            for replica in 0..spec.replicas {
                let Some(address) = admin.get(replica) else {
                    continue;
                };
                let name = if spec.replicas > 1 {
                    format!("{job}#{replica}")
                } else {
                    job.clone()
                };
                if !targets.iter().any(|t: &ScrapeTarget| t.admin == *address) {
                    targets.push(ScrapeTarget {
                        job: name,
                        admin: *address,
                    });
                }
            }
        }
        if targets.is_empty() {
            bail!(
                "the bindings file gives no job an admin listener (`[jobs.<job>] admin = \"host:port\"`): \
                 the dashboard reads each job's metrics there"
            );
        }
        Ok(Arc::new(Dashboard {
            app,
            targets,
            snapshots: Mutex::new(VecDeque::new()),
            spans: Mutex::new(SpanStore::default()),
            logs: Mutex::new(BTreeMap::new()),
        }))
    }

    /// The admin listeners scraped.
    pub fn targets(&self) -> &[ScrapeTarget] {
        &self.targets
    }

    fn jobs(&self) -> BTreeMap<String, Vec<String>> {
        self.app
            .manifest
            .jobs
            .iter()
            .map(|(job, spec)| (job.clone(), spec.components.clone()))
            .collect()
    }

    /// Reads every job's metrics once.
    pub async fn scrape(&self) {
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        let mut snapshot = Snapshot::new();
        for target in &self.targets {
            match fetch(&client, &format!("http://{}/metrics", target.admin)).await {
                Ok(text) => snapshot.add(&text),
                Err(e) => {
                    snapshot
                        .unreachable
                        .insert(target.job.clone(), format!("{e:#}"));
                }
            }
        }
        snapshot.at = Instant::now();
        let mut snapshots = lock(&self.snapshots);
        snapshots.push_back(snapshot);
        while snapshots
            .front()
            .is_some_and(|s| s.at.elapsed() > WINDOW + SCRAPE_EVERY)
        {
            snapshots.pop_front();
        }
    }

    /// Keeps one of a job's log lines (`job` names the process; JSON lines
    /// name their component and trace).
    pub fn log_line(&self, job: &str, line: &str) {
        let parsed: Option<serde_json::Value> = line
            .starts_with('{')
            .then(|| serde_json::from_str(line).ok())
            .flatten();
        let field = |name: &str| {
            parsed
                .as_ref()
                .and_then(|v| v.get(name))
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string()
        };
        let (source, entry) = match &parsed {
            Some(_) => {
                let component = field("component");
                let source = if component.is_empty() {
                    format!("job {job}")
                } else {
                    component
                };
                let mut message = field("message");
                if let Some(error) = parsed.as_ref().and_then(|v| v.get("error")) {
                    message.push_str(&format!(" error={error}"));
                }
                (
                    source,
                    LogLine {
                        time: field("time"),
                        level: field("level"),
                        message,
                        trace_id: field("trace_id"),
                    },
                )
            }
            None => (
                format!("job {job}"),
                LogLine {
                    time: String::new(),
                    level: String::new(),
                    message: line.to_string(),
                    trace_id: String::new(),
                },
            ),
        };
        let mut entry = entry;
        if entry.message.len() > MAX_LOG_MESSAGE {
            let mut end = MAX_LOG_MESSAGE;
            while !entry.message.is_char_boundary(end) {
                end -= 1;
            }
            entry.message.truncate(end);
            entry.message.push('…');
        }
        let mut logs = lock(&self.logs);
        let lines = logs.entry(source).or_default();
        if lines.len() >= LOG_LINES {
            lines.pop_front();
        }
        lines.push_back(entry);
    }

    /// Per-edge and per-method statistics over the window, and the jobs
    /// whose metrics could not be read at the last scrape.
    fn measured(
        &self,
    ) -> (
        Vec<graph::EdgeStats>,
        Vec<graph::EdgeStats>,
        BTreeMap<String, String>,
        Option<Duration>,
    ) {
        let snapshots = lock(&self.snapshots);
        let Some(newest) = snapshots.back() else {
            return (Vec::new(), Vec::new(), BTreeMap::new(), None);
        };
        let oldest = snapshots.front().filter(|s| s.at < newest.at);
        (
            graph::edges(oldest, newest),
            graph::methods(oldest, newest),
            newest.unreachable.clone(),
            Some(newest.at.elapsed()),
        )
    }

    fn state(&self) -> State {
        let (edges, methods, unreachable, _) = self.measured();
        let jobs = self.jobs();
        State {
            app: self.app.name().to_string(),
            revision: self.app.revision.clone(),
            advice: advice::advise(&jobs, &methods),
            jobs,
            edges,
            methods,
            traces: lock(&self.spans)
                .recent(LISTED_TRACES)
                .into_iter()
                .map(|(id, _)| id.to_string())
                .collect(),
            unreachable,
        }
    }

    fn page(&self, selected_trace: Option<&str>) -> DashboardPage {
        let (edges, methods, unreachable, age) = self.measured();
        let jobs: Vec<JobCard> = self
            .app
            .manifest
            .jobs
            .iter()
            .map(|(job, spec)| JobCard {
                name: job.clone(),
                replicas: spec.replicas,
                admin: self
                    .targets
                    .iter()
                    .filter(|t| t.job == *job || t.job.starts_with(&format!("{job}#")))
                    .map(|t| t.admin.to_string())
                    .collect(),
                unreachable: unreachable
                    .iter()
                    .find(|(name, _)| *name == job || name.starts_with(&format!("{job}#")))
                    .map(|(_, why)| why.clone()),
                components: spec
                    .components
                    .iter()
                    .map(|label| ComponentCard {
                        label: label.clone(),
                        binding: self
                            .app
                            .component(label)
                            .map_or("none", |c| c.spec.binding.as_str())
                            .to_string(),
                    })
                    .collect(),
            })
            .collect();
        // Entry points (jobs with HTTP components) on the left.
        let mut jobs = jobs;
        jobs.sort_by_key(|job| {
            (
                !job.components.iter().any(|c| c.binding == "http"),
                job.name.clone(),
            )
        });
        let (graph_width, graph_height, groups, nodes, lines) = page::layout(&jobs, &edges);
        let spans = lock(&self.spans);
        let recent = spans.recent(LISTED_TRACES);
        let (waterfall_id, waterfall) = match selected_trace
            .and_then(|id| Some((id, spans.trace(id)?)))
            .or_else(|| recent.first().map(|(id, spans)| (*id, *spans)))
        {
            Some((id, trace)) => (id.to_string(), spans::waterfall(trace)),
            None => (String::new(), Vec::new()),
        };
        let traces = recent
            .iter()
            .map(|(id, spans)| page::trace_row(id, spans))
            .collect();
        drop(spans);
        let logs = lock(&self.logs)
            .iter()
            .map(|(source, lines)| ComponentLogs {
                source: source.clone(),
                lines: lines
                    .iter()
                    .map(|l| LogLineView {
                        time: l.time.clone(),
                        level: l.level.clone(),
                        message: l.message.clone(),
                        trace_id: l.trace_id.clone(),
                    })
                    .collect(),
            })
            .collect();
        DashboardPage {
            app: self.app.name().to_string(),
            revision: self.app.revision.clone(),
            refresh_seconds: 3,
            scraped: match age {
                Some(age) => format!("metrics read {:.0} s ago", age.as_secs_f64()),
                None => "metrics not read yet".to_string(),
            },
            advice: advice::advise(&self.jobs(), &methods),
            jobs,
            graph_width,
            graph_height,
            groups,
            nodes,
            edges: lines,
            edge_rows: edges.iter().map(page::row).collect(),
            method_rows: methods.iter().map(page::row).collect(),
            traces,
            waterfall_id,
            waterfall,
            logs,
        }
    }

    /// Serves the dashboard on `listener` and scrapes every job until the
    /// task is dropped. Refuses a listener off loopback unless `public`.
    pub async fn serve(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        public: bool,
    ) -> Result<()> {
        let address = listener.local_addr().context("the dashboard's address")?;
        if !address.ip().is_loopback() && !public {
            bail!(
                "the dashboard shows log lines and traces and has no login: it listens on loopback \
                 only ({address} is not); pass --public to listen there anyway"
            );
        }
        let scraper = self.clone();
        let scraping = tokio::spawn(async move {
            let mut every = tokio::time::interval(SCRAPE_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                scraper.scrape().await;
            }
        });
        let _stop_scraping = AbortOnDrop(scraping);
        let connections = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "the dashboard could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = connections.clone().try_acquire_owned() else {
                continue;
            };
            let dashboard = self.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let service = hyper::service::service_fn(move |request| {
                    let dashboard = dashboard.clone();
                    async move { Ok::<_, std::convert::Infallible>(dashboard.answer(request).await) }
                });
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(10))
                    .serve_connection(TokioIo::new(stream), service);
                let _ = tokio::time::timeout(Duration::from_secs(300), connection).await;
            });
        }
    }

    async fn answer(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = request.uri().path().to_string();
        match (request.method().clone(), path.as_str()) {
            (Method::GET, "/") => {
                let trace = request.uri().query().and_then(|q| {
                    q.split('&')
                        .find_map(|pair| pair.strip_prefix("trace="))
                        .filter(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
                        .map(str::to_string)
                });
                match askama::Template::render(&self.page(trace.as_deref())) {
                    Ok(html) => respond(StatusCode::OK, "text/html; charset=utf-8", html),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot render the dashboard page");
                        respond(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "text/plain; charset=utf-8",
                            "the page could not be rendered; see the dashboard's log\n".into(),
                        )
                    }
                }
            }
            (Method::GET, "/api/state") => match serde_json::to_string(&self.state()) {
                Ok(json) => respond(StatusCode::OK, "application/json", json),
                Err(e) => {
                    tracing::error!(error = %e, "cannot serialize the dashboard state");
                    respond(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "text/plain; charset=utf-8",
                        "internal error\n".into(),
                    )
                }
            },
            (Method::POST, "/v1/traces") => self.receive_traces(request).await,
            _ => respond(
                StatusCode::NOT_FOUND,
                "text/plain; charset=utf-8",
                "not found\n".into(),
            ),
        }
    }

    async fn receive_traces(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let declared = request
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > MAX_EXPORT_BYTES) {
            return respond(
                StatusCode::PAYLOAD_TOO_LARGE,
                "text/plain; charset=utf-8",
                format!("an export may have at most {MAX_EXPORT_BYTES} bytes\n"),
            );
        }
        let body = Limited::new(request.into_body(), MAX_EXPORT_BYTES).collect();
        let body = match tokio::time::timeout(BODY_TIMEOUT, body).await {
            Ok(Ok(body)) => body.to_bytes(),
            Ok(Err(_)) | Err(_) => {
                return respond(
                    StatusCode::BAD_REQUEST,
                    "text/plain; charset=utf-8",
                    "the export's body could not be read (too large or too slow)\n".into(),
                );
            }
        };
        match lock(&self.spans).receive(&body) {
            // An empty ExportTraceServiceResponse.
            Ok(_) => {
                let mut response = Response::new(Full::new(Bytes::new()));
                response.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static("application/x-protobuf"),
                );
                response
            }
            Err(e) => {
                tracing::debug!(error = %e, "refused an OTLP export that is not protobuf");
                respond(
                    StatusCode::BAD_REQUEST,
                    "text/plain; charset=utf-8",
                    "not an OTLP/HTTP protobuf trace export\n".into(),
                )
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    response
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `GET url` within [`SCRAPE_TIMEOUT`], the body as text.
async fn fetch(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>,
    url: &str,
) -> Result<String> {
    let request = Request::get(url)
        .body(Empty::new())
        .context("building the request")?;
    let ask = async {
        let response = client.request(request).await.context("cannot connect")?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_METRICS_BYTES)
            .collect()
            .await
            .map_err(|e| anyhow::anyhow!("reading the answer: {e}"))?
            .to_bytes();
        if !status.is_success() {
            bail!("answered {status}");
        }
        Ok(String::from_utf8_lossy(&body).into_owned())
    };
    tokio::time::timeout(SCRAPE_TIMEOUT, ask)
        .await
        .with_context(|| format!("no answer within {} ms", SCRAPE_TIMEOUT.as_millis()))?
        .with_context(|| url.to_string())
}
