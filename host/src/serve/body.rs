//! Reading a request body before any instance is taken: up to the body
//! limit, within the body timeout (and the request's deadline), each chunk
//! reserved against the job's [`MemoryBudget`]. A slow or stalled client
//! thus holds a connection and the bytes it sent, never an instance; a
//! declared `Content-Length` above the limit is refused before one byte is
//! read.

use super::budget::{MemoryBudget, Reservation};
use bytes::{Buf, BufMut};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Body;
use std::sync::Arc;
use tokio::time::Instant;

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Declared or sent larger than the limit.
    #[error("the request body is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// Not all of it arrived before the body timeout or the deadline.
    #[error("the request body did not arrive in time ({received} bytes received)")]
    TimedOut {
        /// Bytes received until then.
        received: u64,
    },
    /// The job's memory budget cannot hold it now.
    #[error("the job's memory budget cannot hold the request body now")]
    OverBudget,
    /// The client's connection failed while sending it.
    #[error("reading the request body: {0}")]
    Client(BoxError),
}

/// The error of a request body, whatever its type.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A body read whole, and the memory it holds.
#[derive(Debug)]
pub struct ReadBody {
    /// The bytes.
    pub bytes: Bytes,
    /// Trailers, if the client sent any.
    pub trailers: Option<hyper::HeaderMap>,
    /// The budget reservation for `bytes`, to keep until they are dropped.
    pub reservation: Reservation,
}

/// The declared `Content-Length` of `headers`, if any.
pub fn declared_length(headers: &hyper::HeaderMap) -> Option<u64> {
    headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// Reads `body` whole: at most `limit` bytes, until `until`, reserved
/// against `budget`.
pub async fn read<B>(
    body: B,
    declared: Option<u64>,
    limit: u64,
    until: Instant,
    budget: &Arc<MemoryBudget>,
) -> Result<ReadBody, BodyError>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let mut reservation = budget.reservation();
    if declared.is_some_and(|length| length > limit) {
        return Err(BodyError::TooLarge { limit });
    }
    if body.is_end_stream() {
        return Ok(ReadBody {
            bytes: Bytes::new(),
            trailers: None,
            reservation,
        });
    }
    // Reserve the declared length up front: the buffer is allocated once.
    let capacity = declared.unwrap_or(0);
    if !reservation.grow(capacity) {
        return Err(BodyError::OverBudget);
    }
    let mut buffer = BytesMut::with_capacity(usize::try_from(capacity).unwrap_or(0));
    let mut trailers = None;
    let mut body = std::pin::pin!(body);
    loop {
        let frame = match tokio::time::timeout_at(until, body.frame()).await {
            Err(_) => {
                return Err(BodyError::TimedOut {
                    received: buffer.len() as u64,
                });
            }
            Ok(None) => break,
            Ok(Some(frame)) => frame.map_err(|e| BodyError::Client(e.into()))?,
        };
        match frame.into_data() {
            Ok(data) => {
                let after = buffer.len() as u64 + data.remaining() as u64;
                if after > limit {
                    return Err(BodyError::TooLarge { limit });
                }
                if after > reservation.bytes() && !reservation.grow(after - reservation.bytes()) {
                    return Err(BodyError::OverBudget);
                }
                buffer.put(data);
            }
            Err(frame) => {
                if let Ok(map) = frame.into_trailers() {
                    trailers = Some(map);
                }
            }
        }
    }
    Ok(ReadBody {
        bytes: buffer.freeze(),
        trailers,
        reservation,
    })
}
