//! Answers the host makes itself, for external clients: a short generic
//! message and a request id, never internal detail (trap messages, internal
//! URLs, revisions). The full error is logged with the same id and the
//! component's label, so an operator can find it from what a client reports.

use bytes::Bytes;
use http_body_util::Full;
use std::sync::atomic::{AtomicU64, Ordering};

/// The response header carrying the request id on host-made answers.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Identifies one request in logs and in the answer a client sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestId(u64);

impl RequestId {
    /// A new id: a per-process random prefix and a counter, so ids of
    /// restarts and replicas don't collide.
    pub fn new() -> RequestId {
        static PREFIX: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let prefix = *PREFIX.get_or_init(|| {
            let mut bytes = [0u8; 8];
            if getrandom::getrandom(&mut bytes).is_err() {
                bytes = u64::from(std::process::id()).to_be_bytes();
            }
            u64::from_be_bytes(bytes) & 0xffff_ffff_0000_0000
        });
        RequestId(prefix | (COUNTER.fetch_add(1, Ordering::Relaxed) & 0xffff_ffff))
    }
}

impl Default for RequestId {
    fn default() -> Self {
        RequestId::new()
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// What went wrong, as a client may be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 400: the request could not be read.
    BadRequest,
    /// 408: the body did not arrive in time.
    BodyTimeout,
    /// 413: the body is larger than the limit (in bytes).
    TooLarge(u64),
    /// 431: more header fields than the limit.
    TooManyHeaders(usize),
    /// 500: the component failed.
    Internal,
    /// 503: no instance or memory now; try again after a second.
    Busy,
    /// 503: the job is shutting down.
    ShuttingDown,
    /// 504: the request ran out of time.
    Timeout,
}

impl Refusal {
    /// The status code.
    pub fn status(self) -> u16 {
        match self {
            Refusal::BadRequest => 400,
            Refusal::BodyTimeout => 408,
            Refusal::TooLarge(_) => 413,
            Refusal::TooManyHeaders(_) => 431,
            Refusal::Internal => 500,
            Refusal::Busy | Refusal::ShuttingDown => 503,
            Refusal::Timeout => 504,
        }
    }

    fn message(self) -> String {
        match self {
            Refusal::BadRequest => "the request could not be read".into(),
            Refusal::BodyTimeout => "the request body did not arrive in time".into(),
            Refusal::TooLarge(limit) => {
                format!("the request body is larger than the limit of {limit} bytes")
            }
            Refusal::TooManyHeaders(limit) => {
                format!("the request has more than {limit} header fields")
            }
            Refusal::Internal => "internal error".into(),
            Refusal::Busy => "the service is busy: try again shortly".into(),
            Refusal::ShuttingDown => "the service is shutting down: try again".into(),
            Refusal::Timeout => "the request did not finish in time".into(),
        }
    }
}

/// The host's answer for `refusal` of request `id`: plain text naming the id.
pub fn refusal(refusal: Refusal, id: RequestId) -> hyper::Response<Full<Bytes>> {
    let text = format!("{} (request id {id})\n", refusal.message());
    let mut response = hyper::Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = hyper::StatusCode::from_u16(refusal.status())
        .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let Ok(value) = hyper::header::HeaderValue::from_str(&id.to_string()) {
        headers.insert(REQUEST_ID_HEADER, value);
    }
    if matches!(refusal, Refusal::Busy | Refusal::ShuttingDown) {
        headers.insert(
            hyper::header::RETRY_AFTER,
            hyper::header::HeaderValue::from_static("1"),
        );
    }
    if refusal == Refusal::ShuttingDown {
        headers.insert(
            hyper::header::CONNECTION,
            hyper::header::HeaderValue::from_static("close"),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_differ_and_answers_carry_them() {
        let (a, b) = (RequestId::new(), RequestId::new());
        assert_ne!(a, b);
        assert_eq!(a.to_string().len(), 16);
        let answer = refusal(Refusal::Busy, a);
        assert_eq!(answer.status(), 503);
        assert_eq!(answer.headers()[REQUEST_ID_HEADER], a.to_string().as_str());
        assert_eq!(answer.headers()[hyper::header::RETRY_AFTER], "1");
    }
}
