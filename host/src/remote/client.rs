//! The caller's side of a remote call: encodes the parameters, sends them to
//! the callee's job over a pooled keep-alive HTTP/1.1 connection with the
//! caller's revision and the remaining deadline, and decodes the results.
//! Transport failures are retried only for functions the manifest marks
//! idempotent.

use super::codec;
use super::protocol::{
    CALL_PATH, CONTENT_TYPE, HEADER_CALLER, HEADER_DEADLINE_MS, HEADER_FUNCTION, HEADER_REVISION,
    MAX_BODY_BYTES, status,
};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::time::{Duration, Instant};
use wasmtime::component::{Type, Val};

/// Attempts of an idempotent call before giving up.
const IDEMPOTENT_ATTEMPTS: u32 = 3;

/// Where calls to one component go.
#[derive(Debug, Clone)]
pub struct RemoteTarget {
    /// The callee's label.
    pub label: String,
    /// The callee job's base URL (from the bindings file's `external`).
    pub base_url: String,
    /// Deadline of each call.
    pub timeout: Duration,
    uri: hyper::Uri,
}

impl RemoteTarget {
    /// A target for component `label` reached at `base_url`.
    pub fn new(label: &str, base_url: &str, timeout: Duration) -> Result<Self, String> {
        let base = base_url.trim_end_matches('/');
        let uri = format!("{base}{CALL_PATH}{label}")
            .parse::<hyper::Uri>()
            .map_err(|e| format!("`{base_url}` is not a usable base URL for `{label}`: {e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!(
                "`{base_url}` (for `{label}`): calls between jobs use plain `http://` URLs"
            ));
        }
        Ok(RemoteTarget {
            label: label.to_string(),
            base_url: base.to_string(),
            timeout,
            uri,
        })
    }
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
        /// The callee job's base URL.
        address: String,
        /// What went wrong.
        detail: String,
    },
    /// The deadline passed: the callee may or may not have executed.
    #[error("remote call to {call} at {address} failed: no answer within the deadline of {} ms; the callee may or may not have run", .timeout.as_millis())]
    DeadlineExceeded {
        /// `<label>.<function>`.
        call: String,
        /// The callee job's base URL.
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
        /// The callee job's base URL.
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
        /// The callee job's base URL.
        address: String,
        /// The HTTP status.
        status: u16,
        /// The callee's message.
        message: String,
    },
    /// The values could not be encoded or the answer decoded.
    #[error("remote call to {call} at {address} failed: {detail}")]
    Protocol {
        /// `<label>.<function>`.
        call: String,
        /// The callee job's base URL.
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
}

impl RemoteClient {
    /// A client for a host of `revision` running job `job`.
    pub fn new(revision: &str, job: &str) -> RemoteClient {
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
        let call = format!("{}.{}", target.label, function.name);
        let address = target.base_url.as_str();
        let protocol = |detail: String| RemoteCallError::Protocol {
            call: call.clone(),
            address: address.to_string(),
            detail,
        };
        let mut body = Vec::with_capacity(64);
        codec::encode_values(params, &function.params, &mut body)
            .map_err(|e| protocol(format!("cannot encode the arguments: {e}")))?;
        let body = Bytes::from(body);
        let deadline = Instant::now() + target.timeout;
        let mut attempt = 1;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let deadline_exceeded = || RemoteCallError::DeadlineExceeded {
                call: call.clone(),
                address: address.to_string(),
                timeout: target.timeout,
            };
            if remaining.is_zero() {
                return Err(deadline_exceeded());
            }
            let request = hyper::Request::post(target.uri.clone())
                .header(HEADER_REVISION, &self.revision)
                .header(HEADER_FUNCTION, &function.qualified)
                .header(HEADER_DEADLINE_MS, remaining.as_millis().max(1).to_string())
                .header(HEADER_CALLER, &self.caller)
                .header(hyper::header::CONTENT_TYPE, CONTENT_TYPE)
                .body(Full::new(body.clone()))
                .map_err(|e| protocol(format!("cannot build the request: {e}")))?;
            let response = match tokio::time::timeout(remaining, self.pool().request(request)).await
            {
                Err(_) => return Err(deadline_exceeded()),
                Ok(Err(e)) => {
                    if function.idempotent && attempt < IDEMPOTENT_ATTEMPTS {
                        tracing::debug!(%call, attempt, error = %e, "retrying idempotent remote call");
                        tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
                        attempt += 1;
                        continue;
                    }
                    return Err(RemoteCallError::Transport {
                        call,
                        address: address.to_string(),
                        detail: error_chain(&e),
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
                Err(_) => return Err(deadline_exceeded()),
                Ok(Err(e)) => {
                    return Err(RemoteCallError::Transport {
                        call,
                        address: address.to_string(),
                        detail: format!("reading the answer: {e}"),
                    });
                }
                Ok(Ok(collected)) => collected.to_bytes(),
            };
            return match code {
                200 => {
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
