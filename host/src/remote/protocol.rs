//! The remote-call protocol's constants, shared by the client
//! ([`super::client`]) and the server (`serve/rpc.rs`). Documented for other
//! implementations in `docs/protocol.md`.
//!
//! A call is `POST /amimono/v1/call/<label>` with the parameters encoded by
//! [`super::codec`] as the body and these headers; the answer is `200` with
//! the results encoded the same way, or an error status with a plain-text
//! message.

/// Path prefix of a call; the callee's label follows.
pub const CALL_PATH: &str = "/amimono/v1/call/";
/// The caller's app revision (required). A callee of another revision answers 409.
pub const HEADER_REVISION: &str = "amimono-revision";
/// The exported function: `<interface export name>#<function>` (required).
pub const HEADER_FUNCTION: &str = "amimono-function";
/// Milliseconds the caller will still wait (optional; the callee stops the call after it).
pub const HEADER_DEADLINE_MS: &str = "amimono-deadline-ms";
/// The calling job and component, for logs (optional).
pub const HEADER_CALLER: &str = "amimono-caller";
/// Content type of parameter and result bodies.
pub const CONTENT_TYPE: &str = "application/vnd.amimono.values";
/// Largest request or response body accepted.
pub const MAX_BODY_BYTES: usize = 64 << 20;

/// Status codes of the protocol, besides 200.
pub mod status {
    /// The request is malformed: missing header, undecodable body.
    pub const MALFORMED: u16 = 400;
    /// The call's `amimono-auth` MAC is missing, forged, stale or replayed.
    pub const UNAUTHENTICATED: u16 = 401;
    /// No such component in the callee's job, or no such function.
    pub const NOT_FOUND: u16 = 404;
    /// Caller and callee run different revisions.
    pub const REVISION_MISMATCH: u16 = 409;
    /// The request body is larger than [`super::MAX_BODY_BYTES`].
    pub const TOO_LARGE: u16 = 413;
    /// The callee trapped while running the function.
    pub const CALLEE_FAILED: u16 = 500;
    /// The callee refused the call before running it: no instance free,
    /// memory budget used up, or shutting down. Safe to retry.
    pub const UNAVAILABLE: u16 = 503;
    /// The callee stopped the call when the deadline passed.
    pub const DEADLINE_EXCEEDED: u16 = 504;
}
