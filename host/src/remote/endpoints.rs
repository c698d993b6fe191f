//! The addresses calls to one callee go to ([`Endpoints`]): every URL the
//! bindings file gives for it (each replica's, or one for the whole job),
//! and, for a URL whose host is a name, every address the name resolves to
//! — so a Kubernetes headless Service or a Compose service with replicas
//! spreads calls over its pods.
//!
//! - Each call picks an endpoint, round-robin among the admitted ones: per
//!   call, not per connection (the client pools keep-alive connections per
//!   endpoint, so a pooled connection never pins a caller to one replica).
//! - Each endpoint has its own [`CircuitBreaker`]: an endpoint that fails
//!   is ejected and probed again later with a growing pause.
//! - Names are resolved with the system resolver (or an injected
//!   [`Resolve`]) under [`RESOLVE_TIMEOUT`]: before the first call, then
//!   again in the background when the last resolution is [`REFRESH_EVERY`]
//!   old — never on the path of every call. A name that fails to resolve
//!   keeps the addresses it had. URLs whose host is an IP address are
//!   never resolved: their endpoints are fixed.

use super::protocol::CALL_PATH;
use super::resilience::{Admission, CircuitBreaker};
use hyper::header::HeaderValue;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// How long one resolution of a name may take.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);
/// How old a resolution gets before the next call starts a new one.
pub const REFRESH_EVERY: Duration = Duration::from_secs(5);
/// How old a resolution must be before a new one when every endpoint is
/// ejected (the replicas may have moved) or a name resolved to nothing.
pub const REFRESH_AT_THE_EARLIEST: Duration = Duration::from_secs(1);
/// Most addresses taken from one name.
pub const MAX_ADDRESSES_PER_NAME: usize = 64;

/// The future of a resolution.
pub type Resolving<'a> =
    Pin<Box<dyn Future<Output = std::io::Result<Vec<SocketAddr>>> + Send + 'a>>;

/// Resolves a host name to addresses.
pub trait Resolve: Send + Sync {
    /// Every address of `host`, with `port`.
    fn resolve<'a>(&'a self, host: &'a str, port: u16) -> Resolving<'a>;
}

/// The system's resolver (`getaddrinfo` through tokio's `lookup_host`).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve<'a>(&'a self, host: &'a str, port: u16) -> Resolving<'a> {
        Box::pin(async move { Ok(tokio::net::lookup_host((host, port)).await?.collect()) })
    }
}

/// One address calls may go to, with its own circuit breaker.
#[derive(Debug)]
pub struct Endpoint {
    /// How errors and logs name it: the URL, followed for a resolved name by
    /// the address (`http://backend:9000 (10.0.0.7:9000)`).
    pub address: String,
    /// The call URL of the callee at this endpoint.
    pub(super) uri: hyper::Uri,
    /// The `Host` header a call carries: the name's, when the URL has
    /// been resolved to an IP address.
    pub(super) host: Option<HeaderValue>,
    /// Whether calls may go here.
    pub(super) breaker: CircuitBreaker,
    /// Which URL it comes from, and the address a name resolved to.
    source: usize,
    resolved: Option<SocketAddr>,
}

/// One URL of the callee.
#[derive(Debug)]
struct Source {
    /// As given, without a trailing `/`.
    url: String,
    /// The host name to resolve (`None`: an IP address, never resolved).
    name: Option<String>,
    port: u16,
    /// Between the authority and the call path (`/prefix` of
    /// `http://host/prefix`).
    path_prefix: String,
    /// Whether the last resolution failed (logged once until it works).
    failing: AtomicBool,
}

/// What [`Endpoints::pick`] found.
#[derive(Debug, Clone)]
pub enum Pick {
    /// Call here.
    Endpoint(Arc<Endpoint>),
    /// Every endpoint that could be picked is ejected; the nearest probe is
    /// this far.
    Ejected(Duration),
    /// The callee has no address (its names resolved to nothing yet).
    NoAddress,
}

/// Every endpoint of one callee; see the module docs.
#[derive(Clone)]
pub struct Endpoints {
    shared: Arc<Shared>,
}

struct Shared {
    callee: String,
    sources: Vec<Source>,
    resolver: Arc<dyn Resolve>,
    /// The current endpoints, replaced whole by each resolution.
    set: RwLock<Arc<[Arc<Endpoint>]>>,
    /// Round-robin position.
    next: AtomicUsize,
    /// Whether any URL names a host to resolve.
    resolves: bool,
    refresh: Mutex<Refresh>,
    /// Serializes the resolutions a call waits for.
    first: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct Refresh {
    /// When the last resolution ended.
    last: Option<Instant>,
    /// Whether one runs in the background.
    running: bool,
}

impl std::fmt::Debug for Endpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoints")
            .field("callee", &self.shared.callee)
            .field("urls", &self.urls())
            .finish_non_exhaustive()
    }
}

impl Endpoints {
    /// The endpoints of `callee` at `urls` (plain `http://` base URLs),
    /// resolving names with `resolver`.
    pub fn new(
        callee: &str,
        urls: &[String],
        resolver: Arc<dyn Resolve>,
    ) -> Result<Endpoints, String> {
        if urls.is_empty() {
            return Err(format!("no URL is given for `{callee}`"));
        }
        let sources = urls
            .iter()
            .map(|url| source(callee, url))
            .collect::<Result<Vec<_>, _>>()?;
        let fixed: Vec<Arc<Endpoint>> = sources
            .iter()
            .enumerate()
            .filter(|(_, source)| source.name.is_none())
            .map(|(index, source)| endpoint(callee, index, source, None))
            .collect::<Result<_, _>>()?;
        let resolves = sources.iter().any(|source| source.name.is_some());
        Ok(Endpoints {
            shared: Arc::new(Shared {
                callee: callee.to_string(),
                sources,
                resolver,
                set: RwLock::new(fixed.into()),
                next: AtomicUsize::new(0),
                resolves,
                refresh: Mutex::default(),
                first: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// The URLs given, as given.
    pub fn urls(&self) -> Vec<String> {
        self.shared.sources.iter().map(|s| s.url.clone()).collect()
    }

    /// The current endpoints.
    pub fn current(&self) -> Arc<[Arc<Endpoint>]> {
        self.shared.current()
    }

    /// Every current endpoint's address, joined (the URLs when there is
    /// none yet), for errors.
    pub fn describe(&self) -> String {
        let current = self.current();
        if current.is_empty() {
            return self.urls().join(", ");
        }
        current
            .iter()
            .map(|e| e.address.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Whether calls may go to some endpoint now.
    pub fn any_admitted(&self) -> bool {
        self.current().iter().any(|e| e.breaker.is_closed())
    }

    /// Makes sure names have been resolved: waits for the first resolution
    /// (bounded by [`RESOLVE_TIMEOUT`] per name), and starts a new one in
    /// the background when the last is [`REFRESH_EVERY`] old. Free when
    /// every URL is an IP address.
    pub async fn refresh_if_due(&self) {
        if self.shared.resolves {
            self.refresh_if_due_at(Instant::now()).await;
        }
    }

    async fn refresh_if_due_at(&self, now: Instant) {
        if self.current().is_empty() {
            let _one_at_a_time = self.shared.first.lock().await;
            let tried_lately = self.shared.resolved_within(now, REFRESH_AT_THE_EARLIEST);
            if self.current().is_empty() && !tried_lately {
                self.shared.resolve().await;
            }
        } else if !self.shared.resolved_within(now, REFRESH_EVERY) {
            self.refresh_in_background();
        }
    }

    /// Every endpoint was ejected: resolves the names again soon (the
    /// replicas may have moved), at most every [`REFRESH_AT_THE_EARLIEST`].
    pub fn all_ejected(&self) {
        if self.shared.resolves
            && !self
                .shared
                .resolved_within(Instant::now(), REFRESH_AT_THE_EARLIEST)
        {
            self.refresh_in_background();
        }
    }

    /// Resolves every name now (for tests and start-up).
    pub async fn resolve_now(&self) {
        if self.shared.resolves {
            self.shared.resolve().await;
        }
    }

    fn refresh_in_background(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        {
            let mut refresh = self
                .shared
                .refresh
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if refresh.running {
                return;
            }
            refresh.running = true;
        }
        let running = Running(self.shared.clone());
        runtime.spawn(async move {
            running.0.resolve().await;
            drop(running);
        });
    }

    /// The endpoint of the next call at `now`: round-robin among the
    /// admitted endpoints, first those not in `tried`, then (if `reuse`)
    /// those in it. An endpoint whose ejection is over is picked as its
    /// probe.
    pub fn pick(&self, now: Instant, tried: &[Arc<Endpoint>], reuse: bool) -> Pick {
        let set = self.current();
        let count = set.len();
        if count == 0 {
            return Pick::NoAddress;
        }
        let start = if count == 1 {
            0
        } else {
            self.shared.next.fetch_add(1, Ordering::Relaxed) % count
        };
        let was_tried = |e: &Arc<Endpoint>| tried.iter().any(|t| Arc::ptr_eq(t, e));
        let mut nearest: Option<Duration> = None;
        for second_pass in [false, true] {
            if second_pass && (!reuse || tried.is_empty()) {
                break;
            }
            for offset in 0..count {
                let endpoint = &set[(start + offset) % count];
                if was_tried(endpoint) != second_pass {
                    continue;
                }
                match endpoint.breaker.admit(now) {
                    Admission::Call | Admission::Probe => return Pick::Endpoint(endpoint.clone()),
                    Admission::Refused(wait) => {
                        nearest = Some(nearest.map_or(wait, |n| n.min(wait)));
                    }
                }
            }
        }
        Pick::Ejected(nearest.unwrap_or(Duration::ZERO))
    }
}

/// Marks the background resolution over, however its task ends.
struct Running(Arc<Shared>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0
            .refresh
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .running = false;
    }
}

impl Shared {
    fn current(&self) -> Arc<[Arc<Endpoint>]> {
        self.set
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether a resolution ended less than `age` before `now`.
    fn resolved_within(&self, now: Instant, age: Duration) -> bool {
        self.refresh
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .last
            .is_some_and(|last| now.saturating_duration_since(last) < age)
    }

    /// Resolves every name and replaces the set: endpoints still there keep
    /// their state (ejections, pooled connections); a name that fails keeps
    /// the endpoints it had.
    async fn resolve(&self) {
        let before = self.current();
        let mut after: Vec<Arc<Endpoint>> = Vec::with_capacity(before.len());
        for (index, source) in self.sources.iter().enumerate() {
            let Some(name) = &source.name else {
                after.extend(before.iter().filter(|e| e.source == index).cloned());
                continue;
            };
            let resolved =
                tokio::time::timeout(RESOLVE_TIMEOUT, self.resolver.resolve(name, source.port))
                    .await;
            let problem = match resolved {
                Ok(Ok(addresses)) if !addresses.is_empty() => {
                    let mut addresses = addresses;
                    addresses.sort();
                    addresses.dedup();
                    addresses.truncate(MAX_ADDRESSES_PER_NAME);
                    if source.failing.swap(false, Ordering::Relaxed) {
                        tracing::info!(callee = %self.callee, url = %source.url, "the callee's name resolves again");
                    }
                    for address in addresses {
                        let kept = before
                            .iter()
                            .find(|e| e.source == index && e.resolved == Some(address));
                        match kept {
                            Some(kept) => after.push(kept.clone()),
                            None => match endpoint(&self.callee, index, source, Some(address)) {
                                Ok(new) => after.push(new),
                                Err(e) => {
                                    tracing::warn!(callee = %self.callee, error = %e, "skipping an address")
                                }
                            },
                        }
                    }
                    continue;
                }
                Ok(Ok(_)) => "it resolves to no address".to_string(),
                Ok(Err(e)) => format!("it does not resolve: {e}"),
                Err(_) => format!(
                    "it did not resolve within {} ms",
                    RESOLVE_TIMEOUT.as_millis()
                ),
            };
            if !source.failing.swap(true, Ordering::Relaxed) {
                tracing::warn!(callee = %self.callee, url = %source.url, problem = %problem, "cannot resolve the callee's name; keeping the addresses it had");
            }
            after.extend(before.iter().filter(|e| e.source == index).cloned());
        }
        let changed = after.len() != before.len()
            || after
                .iter()
                .zip(before.iter())
                .any(|(a, b)| !Arc::ptr_eq(a, b));
        if changed {
            let addresses: Vec<&str> = after.iter().map(|e| e.address.as_str()).collect();
            tracing::info!(callee = %self.callee, addresses = %addresses.join(", "), "the callee's addresses changed");
            *self.set.write().unwrap_or_else(PoisonError::into_inner) = after.into();
        }
        self.refresh
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .last = Some(Instant::now());
    }
}

/// Checks base URL `url` of `callee`.
fn source(callee: &str, url: &str) -> Result<Source, String> {
    let base = url.trim_end_matches('/');
    let uri = format!("{base}{CALL_PATH}{callee}")
        .parse::<hyper::Uri>()
        .map_err(|e| format!("`{url}` is not a usable base URL for `{callee}`: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!(
            "`{url}` (for `{callee}`): calls between jobs use plain `http://` URLs"
        ));
    }
    let host = uri
        .host()
        .ok_or_else(|| format!("`{url}` (for `{callee}`) names no host"))?;
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    let path_prefix = base
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|at| rest[at..].to_string()))
        .unwrap_or_default();
    Ok(Source {
        url: base.to_string(),
        name: literal.parse::<IpAddr>().is_err().then(|| host.to_string()),
        port: uri.port_u16().unwrap_or(80),
        path_prefix,
        failing: AtomicBool::new(false),
    })
}

/// The endpoint of `source` (the `index`th URL), at `resolved` for a name.
fn endpoint(
    callee: &str,
    index: usize,
    source: &Source,
    resolved: Option<SocketAddr>,
) -> Result<Arc<Endpoint>, String> {
    let (base, address, host) = match resolved {
        None => (source.url.clone(), source.url.clone(), None),
        Some(at) => {
            let authority = match source.url.split_once("://") {
                Some((_, rest)) => rest.split('/').next().unwrap_or(rest),
                None => source.url.as_str(),
            };
            let host =
                HeaderValue::from_str(authority).map_err(|e| format!("`{}`: {e}", source.url))?;
            (
                format!("http://{at}{}", source.path_prefix),
                format!("{} ({at})", source.url),
                Some(host),
            )
        }
    };
    let uri = format!("{base}{CALL_PATH}{callee}")
        .parse::<hyper::Uri>()
        .map_err(|e| format!("`{base}` is not a usable base URL for `{callee}`: {e}"))?;
    Ok(Arc::new(Endpoint {
        breaker: CircuitBreaker::new(callee, &address),
        address,
        uri,
        host,
        source: index,
        resolved,
    }))
}

#[cfg(test)]
mod tests;
