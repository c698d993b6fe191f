//! The caller's side of a remote call: encodes the parameters, picks one of
//! the callee's endpoints ([`super::endpoints`]: every replica, every
//! address its names resolve to; per call, round-robin), sends the call
//! there over a pooled keep-alive HTTP/1.1 connection with the caller's
//! revision, the remaining deadline and the call's MAC ([`super::auth`]),
//! and decodes the results.
//!
//! A call that could not connect (the request was never sent) goes to
//! another endpoint, whatever the function. Other failures to reach the
//! callee (transport errors, a callee too busy or shutting down) are retried
//! only for functions the manifest marks idempotent, within the callee's
//! retry budget and after a jittered backoff, on another endpoint when there
//! is one. An endpoint that keeps failing — or refuses a connection while
//! the callee has others — is ejected ([`super::resilience`]) until a probe
//! gets through; when every endpoint is ejected, calls fail at once.

use super::auth::{self, Authentication, CallFields};
use super::codec;
use super::endpoints::{Endpoint, Endpoints, Pick, Resolve, SystemResolver};
use super::protocol::{
    CONTENT_TYPE, HEADER_CALLER, HEADER_DEADLINE_MS, HEADER_FUNCTION, HEADER_REVISION,
    MAX_BODY_BYTES, status,
};
use super::resilience::{RetryBudget, backoff};
use crate::observe::traces::TraceContext;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{Type, Val};

/// Attempts of an idempotent call before giving up.
const IDEMPOTENT_ATTEMPTS: u32 = 3;

/// Where calls to one component go, and how that callee has been answering.
#[derive(Debug)]
pub struct RemoteTarget {
    /// The callee's label.
    pub label: String,
    /// Deadline of each call.
    pub timeout: Duration,
    endpoints: Endpoints,
    retries: RetryBudget,
}

impl RemoteTarget {
    /// A target for component `label` reached at `base_url`.
    pub fn new(label: &str, base_url: &str, timeout: Duration) -> Result<Self, String> {
        RemoteTarget::with_urls(label, &[base_url.to_string()], timeout)
    }

    /// A target for component `label` reached at every one of `urls` (the
    /// bindings file's `external`: each replica's, or one for the job),
    /// names resolved by the system's resolver.
    pub fn with_urls(label: &str, urls: &[String], timeout: Duration) -> Result<Self, String> {
        RemoteTarget::with_resolver(label, urls, timeout, Arc::new(SystemResolver))
    }

    /// [`RemoteTarget::with_urls`], names resolved by `resolver`.
    pub fn with_resolver(
        label: &str,
        urls: &[String],
        timeout: Duration,
        resolver: Arc<dyn Resolve>,
    ) -> Result<Self, String> {
        Ok(RemoteTarget {
            label: label.to_string(),
            timeout,
            endpoints: Endpoints::new(label, urls, resolver)?,
            retries: RetryBudget::default(),
        })
    }

    /// The URLs the callee is reached at, as given.
    pub fn urls(&self) -> Vec<String> {
        self.endpoints.urls()
    }

    /// The callee's endpoints.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// Whether calls to this callee go out normally (some address of it is
    /// admitted: its circuit is closed).
    pub fn circuit_closed(&self) -> bool {
        self.endpoints.any_admitted()
    }
}

/// What one remote call sent, received and took.
#[derive(Debug, Default, Clone, Copy)]
pub struct CallStats {
    /// Encoded arguments, in bytes.
    pub request_bytes: usize,
    /// Encoded results of a successful answer, in bytes.
    pub reply_bytes: usize,
    /// Attempts made (more than 1: retried).
    pub attempts: u32,
}

/// One remote function, with its types.
#[derive(Debug, Clone)]
pub struct RemoteFunction {
    /// `<export name>#<function>`, as the callee exports it.
    pub qualified: String,
    /// The function's name.
    pub name: String,
    /// Parameter types.
    pub params: Vec<Type>,
    /// Result types.
    pub results: Vec<Type>,
    /// Whether a transport failure may be retried.
    pub idempotent: bool,
}

/// Why a remote call failed. Every message says which call and where.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteCallError {
    /// The request could not be sent or the answer not received: the callee
    /// may or may not have executed.
    #[error(
        "remote call to {call} at {address} failed: {detail}; the callee may or may not have run"
    )]
    Transport {
        /// `<label>.<function>`.
        call: String,
        /// The callee's address the call went to.
        address: String,
        /// What went wrong.
        detail: String,
    },
    /// The deadline passed: the callee may or may not have executed.
    #[error("remote call to {call} at {address} failed: no answer within the deadline of {} ms; the callee may or may not have run", .timeout.as_millis())]
    DeadlineExceeded {
        /// `<label>.<function>`.
        call: String,
        /// The callee's address the call went to.
        address: String,
        /// The deadline.
        timeout: Duration,
    },
    /// The callee runs another revision of the app and refused the call.
    #[error(
        "remote call to {call} at {address} failed: refused because revisions differ (caller {caller_revision}, callee {callee_revision}); hosts of different revisions never talk to each other: deploy one bundle to every job"
    )]
    RevisionMismatch {
        /// `<label>.<function>`.
        call: String,
        /// The callee's address the call went to.
        address: String,
        /// This host's revision.
        caller_revision: String,
        /// The callee's revision.
        callee_revision: String,
    },
    /// The callee answered with an error (it trapped, or refused the request).
    #[error("remote call to {call} at {address} failed: the callee answered {status}: {message}")]
    Callee {
        /// `<label>.<function>`.
        call: String,
        /// The callee's address the call went to.
        address: String,
        /// The HTTP status.
        status: u16,
        /// The callee's message.
        message: String,
    },
    /// Every address of the callee kept failing and is ejected (its
    /// circuit is open): the call was not sent.
    #[error("remote call to {call} at {address} not sent: the callee failed repeatedly at every address, its circuit is open for {} ms more", .retry_in.as_millis())]
    CircuitOpen {
        /// `<label>.<function>`.
        call: String,
        /// Every address of the callee.
        address: String,
        /// Until the next probe.
        retry_in: Duration,
    },
    /// The callee's URLs name hosts that resolve to no address (yet): the
    /// call was not sent.
    #[error(
        "remote call to {call} at {address} not sent: the host names resolve to no address (the callee's job may not run yet, or its name is wrong)"
    )]
    NoAddress {
        /// `<label>.<function>`.
        call: String,
        /// The callee's URLs.
        address: String,
    },
    /// The values could not be encoded or the answer decoded.
    #[error("remote call to {call} at {address} failed: {detail}")]
    Protocol {
        /// `<label>.<function>`.
        call: String,
        /// The callee's address the call went to.
        address: String,
        /// What went wrong.
        detail: String,
    },
}

/// Sends remote calls for one host process.
pub struct RemoteClient {
    /// One connection pool per serving thread (and a last one for any other
    /// thread): a connection's task runs on the thread whose call opened it,
    /// so a call never has to wake another core to use a pooled connection.
    http: Vec<Client<HttpConnector, Full<Bytes>>>,
    revision: String,
    caller: String,
    authentication: Authentication,
}

impl RemoteClient {
    /// A client for a host of `revision` running job `job`, signing its calls
    /// per `authentication`.
    pub fn new(revision: &str, job: &str, authentication: Authentication) -> RemoteClient {
        let pools = crate::serve::threads::per_core_count() + 1;
        let http = (0..pools)
            .map(|_| {
                let mut connector = HttpConnector::new();
                connector.set_nodelay(true);
                connector.set_connect_timeout(Some(Duration::from_secs(5)));
                Client::builder(TokioExecutor::new())
                    .pool_idle_timeout(Duration::from_secs(60))
                    .build(connector)
            })
            .collect();
        RemoteClient {
            http,
            revision: revision.to_string(),
            caller: job.to_string(),
            authentication,
        }
    }

    /// The connection pool of the calling thread.
    fn pool(&self) -> &Client<HttpConnector, Full<Bytes>> {
        let last = self.http.len() - 1;
        let index = crate::serve::threads::current_index().map_or(last, |i| i % last.max(1));
        &self.http[index]
    }

    /// Calls `function` of `target` with `params`, writing `results`.
    pub async fn call(
        &self,
        target: &RemoteTarget,
        function: &RemoteFunction,
        params: &[Val],
        results: &mut [Val],
    ) -> Result<(), RemoteCallError> {
        self.call_measured(
            target,
            function,
            params,
            results,
            &mut CallStats::default(),
            &TraceContext::none(),
        )
        .await
    }

    /// [`call`](Self::call), telling `stats` the sizes sent and received and
    /// how many attempts it took, the request carrying `trace` (W3C
    /// `traceparent`).
    pub async fn call_measured(
        &self,
        target: &RemoteTarget,
        function: &RemoteFunction,
        params: &[Val],
        results: &mut [Val],
        stats: &mut CallStats,
        trace: &TraceContext,
    ) -> Result<(), RemoteCallError> {
        let call = format!("{}.{}", target.label, function.name);
        let mut body = Vec::with_capacity(64);
        if let Err(e) = codec::encode_values(params, &function.params, &mut body) {
            return Err(RemoteCallError::Protocol {
                call,
                address: target.endpoints.describe(),
                detail: format!("cannot encode the arguments: {e}"),
            });
        }
        let body = Bytes::from(body);
        stats.request_bytes = body.len();
        let deadline = Instant::now() + target.timeout;
        target.retries.record_call();
        target.endpoints.refresh_if_due().await;
        let mut attempt = 1;
        // Endpoints tried so far, and the one the next attempt goes to.
        let mut tried: Vec<Arc<Endpoint>> = Vec::new();
        let mut next: Option<Arc<Endpoint>> = None;
        loop {
            stats.attempts = attempt;
            let endpoint = match next.take() {
                Some(endpoint) => endpoint,
                None => match target.endpoints.pick(Instant::now(), &tried, true) {
                    Pick::Endpoint(endpoint) => endpoint,
                    Pick::Ejected(retry_in) => {
                        target.endpoints.all_ejected();
                        return Err(RemoteCallError::CircuitOpen {
                            call,
                            address: target.endpoints.describe(),
                            retry_in,
                        });
                    }
                    Pick::NoAddress => {
                        return Err(RemoteCallError::NoAddress {
                            call,
                            address: target.endpoints.describe(),
                        });
                    }
                },
            };
            let address = endpoint.address.as_str();
            let protocol = |detail: String| RemoteCallError::Protocol {
                call: call.clone(),
                address: address.to_string(),
                detail,
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            let deadline_exceeded = || RemoteCallError::DeadlineExceeded {
                call: call.clone(),
                address: address.to_string(),
                timeout: target.timeout,
            };
            if remaining.is_zero() {
                return Err(deadline_exceeded());
            }
            let deadline_ms = remaining.as_millis().max(1).to_string();
            let mut request = hyper::Request::post(endpoint.uri.clone())
                .header(HEADER_REVISION, &self.revision)
                .header(HEADER_FUNCTION, &function.qualified)
                .header(HEADER_DEADLINE_MS, &deadline_ms)
                .header(HEADER_CALLER, &self.caller)
                .header(hyper::header::CONTENT_TYPE, CONTENT_TYPE);
            if let Some(host) = &endpoint.host {
                request = request.header(hyper::header::HOST, host);
            }
            if let Authentication::Key(key) = &self.authentication {
                let fields = CallFields {
                    revision: &self.revision,
                    label: &target.label,
                    function: &function.qualified,
                    deadline_ms: &deadline_ms,
                    caller: &self.caller,
                };
                request = request.header(auth::HEADER_AUTH, auth::sign(key, &fields, &body));
            }
            if let Some(headers) = request.headers_mut() {
                trace.insert_into(headers);
            }
            let request = request
                .body(Full::new(body.clone()))
                .map_err(|e| protocol(format!("cannot build the request: {e}")))?;
            // May this failure be retried (the call is idempotent, time and
            // the callee's retry budget allow)? Sleeps the backoff if so.
            let retry = |attempt: u32| {
                let may = function.idempotent
                    && attempt < IDEMPOTENT_ATTEMPTS
                    && target.retries.try_retry();
                async move {
                    if !may {
                        return false;
                    }
                    let pause = backoff(attempt);
                    if Instant::now() + pause >= deadline {
                        return false;
                    }
                    tokio::time::sleep(pause).await;
                    true
                }
            };
            let response = match tokio::time::timeout(remaining, self.pool().request(request)).await
            {
                Err(_) => {
                    endpoint.breaker.failed(Instant::now());
                    return Err(deadline_exceeded());
                }
                Ok(Err(e)) => {
                    let now = Instant::now();
                    let several = target.endpoints.current().len() > 1;
                    if e.is_connect() && several {
                        // Refused or unreachable: the request was never
                        // sent, and the callee has other endpoints.
                        endpoint.breaker.eject(now);
                    } else {
                        endpoint.breaker.failed(now);
                    }
                    let detail = error_chain(&e);
                    tried.push(endpoint.clone());
                    if e.is_connect()
                        && let Pick::Endpoint(other) = target.endpoints.pick(now, &tried, false)
                    {
                        tracing::debug!(%call, from = %endpoint.address, to = %other.address, error = %detail, "retrying remote call on another address: the request was never sent");
                        next = Some(other);
                        continue;
                    }
                    if retry(attempt).await {
                        tracing::debug!(%call, attempt, address = %endpoint.address, error = %detail, "retrying idempotent remote call");
                        attempt += 1;
                        continue;
                    }
                    return Err(RemoteCallError::Transport {
                        call,
                        address: endpoint.address.clone(),
                        detail,
                    });
                }
                Ok(Ok(response)) => response,
            };
            let code = response.status().as_u16();
            let callee_revision = response
                .headers()
                .get(HEADER_REVISION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("unknown")
                .to_string();
            let collected = tokio::time::timeout(
                deadline.saturating_duration_since(Instant::now()),
                Limited::new(response.into_body(), MAX_BODY_BYTES).collect(),
            )
            .await;
            let bytes = match collected {
                Err(_) => {
                    endpoint.breaker.failed(Instant::now());
                    return Err(deadline_exceeded());
                }
                Ok(Err(e)) => {
                    endpoint.breaker.failed(Instant::now());
                    return Err(RemoteCallError::Transport {
                        call,
                        address: address.to_string(),
                        detail: format!("reading the answer: {e}"),
                    });
                }
                Ok(Ok(collected)) => collected.to_bytes(),
            };
            if code == status::UNAVAILABLE {
                // Refused before it ran (busy, shutting down): safe to retry
                // an idempotent call, and a sign of a struggling callee.
                endpoint.breaker.failed(Instant::now());
                if retry(attempt).await {
                    tracing::debug!(%call, attempt, address = %endpoint.address, "retrying idempotent remote call refused by a busy callee");
                    tried.push(endpoint.clone());
                    attempt += 1;
                    continue;
                }
            } else {
                endpoint.breaker.succeeded();
            }
            return match code {
                200 => {
                    stats.reply_bytes = bytes.len();
                    let values = codec::decode_values(&bytes, &function.results)
                        .map_err(|e| protocol(format!("malformed answer: {e}")))?;
                    if values.len() != results.len() {
                        return Err(protocol(format!(
                            "the answer has {} results, expected {}",
                            values.len(),
                            results.len()
                        )));
                    }
                    for (slot, value) in results.iter_mut().zip(values) {
                        *slot = value;
                    }
                    Ok(())
                }
                status::REVISION_MISMATCH => Err(RemoteCallError::RevisionMismatch {
                    call,
                    address: address.to_string(),
                    caller_revision: self.revision.clone(),
                    callee_revision,
                }),
                status::DEADLINE_EXCEEDED => Err(deadline_exceeded()),
                status::UNAUTHENTICATED => Err(RemoteCallError::Callee {
                    call,
                    address: address.to_string(),
                    status: code,
                    message: "the callee refused the call as unauthenticated: every job of a deployment needs the same cluster key (AMIMONO_CLUSTER_KEY)".to_string(),
                }),
                status => Err(RemoteCallError::Callee {
                    call,
                    address: address.to_string(),
                    status,
                    message: String::from_utf8_lossy(&bytes).trim().to_string(),
                }),
            };
        }
    }
}

/// An error and its sources, joined with `: `.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests;
