//! Authenticating calls between jobs. Every remote call carries an
//! `amimono-auth` header: a timestamp, a nonce, the SHA-256 of the body and
//! an HMAC-SHA256, under the deployment's cluster key, over everything the
//! callee acts on (revision, callee label, function, deadline, caller job,
//! timestamp, nonce, body digest). The callee refuses a call whose MAC does
//! not verify, whose timestamp is outside the replay window, whose nonce it
//! has already seen within that window, or whose body does not match the
//! digest — before it reads the body or reveals anything about itself.
//!
//! The key comes from the environment (`AMIMONO_CLUSTER_KEY`, or a file named
//! by `AMIMONO_CLUSTER_KEY_FILE`); `amimono up` makes one per run. It is never
//! written to the bundle, a log line or `_config`. `AMIMONO_INSECURE_NO_AUTH=1`
//! turns authentication off, loudly, for local debugging only.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The header carrying the call's authentication.
pub const HEADER_AUTH: &str = "amimono-auth";
/// The environment variable holding the cluster key.
pub const KEY_ENV: &str = "AMIMONO_CLUSTER_KEY";
/// The environment variable naming a file holding the cluster key.
pub const KEY_FILE_ENV: &str = "AMIMONO_CLUSTER_KEY_FILE";
/// The environment variable that, set to `1`, turns authentication off.
pub const INSECURE_ENV: &str = "AMIMONO_INSECURE_NO_AUTH";
/// Fewest bytes a cluster key may have.
pub const MIN_KEY_BYTES: usize = 32;
/// How far a call's timestamp may be from the callee's clock.
pub const REPLAY_WINDOW: Duration = Duration::from_secs(30);
/// Nonces remembered at most (calls within one replay window); beyond,
/// calls are refused until old ones expire.
const MAX_REMEMBERED_NONCES: usize = 1 << 21;
/// The version tag that starts the header value and the MAC input.
const VERSION: &str = "v1";

type HmacSha256 = Hmac<Sha256>;

/// The secret shared by every process of one deployment.
#[derive(Clone)]
pub struct ClusterKey(Vec<u8>);

impl std::fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterKey(<redacted>)")
    }
}

/// Why a cluster key could not be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Neither variable is set.
    #[error(
        "calls between jobs are authenticated, but no cluster key is set: set {KEY_ENV} (at least {MIN_KEY_BYTES} bytes, the same in every job of the deployment; `amimono up` makes one per run, `amimono cluster-key` prints a new one) or {KEY_FILE_ENV} to a file holding it; for local debugging only, {INSECURE_ENV}=1 turns authentication off"
    )]
    Missing,
    /// The key is too short.
    #[error(
        "the cluster key from {0} is too short: it must have at least {MIN_KEY_BYTES} bytes (`amimono cluster-key` prints a good one)"
    )]
    TooShort(&'static str),
    /// Both variables are set.
    #[error("both {KEY_ENV} and {KEY_FILE_ENV} are set: set only one")]
    Ambiguous,
    /// The key file cannot be read.
    #[error("cannot read the cluster key file `{path}` (from {KEY_FILE_ENV}): {error}")]
    File {
        /// The file.
        path: String,
        /// The OS error.
        error: std::io::Error,
    },
}

impl ClusterKey {
    /// A key from its bytes (at least [`MIN_KEY_BYTES`]).
    pub fn from_bytes(bytes: &[u8]) -> Option<ClusterKey> {
        (bytes.len() >= MIN_KEY_BYTES).then(|| ClusterKey(bytes.to_vec()))
    }

    /// A new random key, as text (64 hex digits), for `amimono up` and
    /// `amimono cluster-key`.
    pub fn generate() -> std::io::Result<String> {
        let mut bytes = [0u8; 32];
        getrandom::getrandom(&mut bytes).map_err(std::io::Error::other)?;
        Ok(hex::encode(bytes))
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes keys of any length: this cannot fail.
        match HmacSha256::new_from_slice(&self.0) {
            Ok(mac) => mac,
            Err(_) => unreachable_hmac(),
        }
    }
}

#[cold]
fn unreachable_hmac() -> HmacSha256 {
    // `Hmac::new_from_slice` accepts every key length; keep a defined
    // (useless) value rather than a panic path.
    <HmacSha256 as Mac>::new(&Default::default())
}

/// Whether calls are authenticated in this process, and with which key.
#[derive(Debug, Clone)]
pub enum Authentication {
    /// Every call is signed and checked under this key.
    Key(ClusterKey),
    /// Nothing is signed or checked (`AMIMONO_INSECURE_NO_AUTH=1`).
    Disabled,
}

impl Authentication {
    /// From the environment: the key from [`KEY_ENV`] or [`KEY_FILE_ENV`],
    /// or disabled by [`INSECURE_ENV`]. `None` when nothing is set.
    pub fn from_environment() -> Result<Option<Authentication>, KeyError> {
        let insecure = std::env::var(INSECURE_ENV).is_ok_and(|v| v == "1");
        let text = std::env::var_os(KEY_ENV);
        let file = std::env::var_os(KEY_FILE_ENV);
        let key = match (text, file) {
            (Some(_), Some(_)) => return Err(KeyError::Ambiguous),
            (Some(text), None) => {
                let bytes = text.as_encoded_bytes().trim_ascii().to_vec();
                Some(ClusterKey::from_bytes(&bytes).ok_or(KeyError::TooShort(KEY_ENV))?)
            }
            (None, Some(path)) => {
                let bytes = std::fs::read(&path).map_err(|error| KeyError::File {
                    path: path.to_string_lossy().into_owned(),
                    error,
                })?;
                Some(
                    ClusterKey::from_bytes(bytes.trim_ascii())
                        .ok_or(KeyError::TooShort(KEY_FILE_ENV))?,
                )
            }
            (None, None) => None,
        };
        Ok(match (key, insecure) {
            (Some(key), _) => Some(Authentication::Key(key)),
            (None, true) => Some(Authentication::Disabled),
            (None, false) => None,
        })
    }
}

/// What a call's MAC covers besides its timestamp and nonce.
#[derive(Debug, Clone, Copy)]
pub struct CallFields<'a> {
    /// The caller's revision (`amimono-revision`).
    pub revision: &'a str,
    /// The callee's label (from the path).
    pub label: &'a str,
    /// `amimono-function`.
    pub function: &'a str,
    /// `amimono-deadline-ms`, as sent (empty when absent).
    pub deadline_ms: &'a str,
    /// `amimono-caller`, as sent (empty when absent).
    pub caller: &'a str,
}

/// Why a call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No `amimono-auth` header.
    #[error("the call carries no `amimono-auth` header")]
    Missing,
    /// The header is not `v1.<ts>.<nonce>.<body sha256>.<mac>`.
    #[error("the `amimono-auth` header is malformed")]
    Malformed,
    /// The timestamp is outside the replay window.
    #[error("the call's timestamp is {skew_ms} ms away from this host's clock (window: {} ms)", REPLAY_WINDOW.as_millis())]
    Stale {
        /// How far off, in ms.
        skew_ms: u64,
    },
    /// The MAC does not verify: forged, altered, or signed with another key.
    #[error("the call's MAC does not verify (forged, altered, or another cluster key)")]
    BadMac,
    /// This nonce was seen within the window.
    #[error("the call replays one already received")]
    Replayed,
    /// Too many calls within one window to remember.
    #[error("too many calls within the replay window to remember")]
    Overloaded,
    /// The body does not match the signed digest.
    #[error("the body does not match the digest the call was signed with")]
    BodyMismatch,
}

/// The parsed header of a call whose MAC verified: the body digest still
/// has to match ([`Verified::check_body`]).
#[derive(Debug)]
pub struct Verified {
    body_sha256: [u8; 32],
}

impl Verified {
    /// Checks the received body against the signed digest.
    pub fn check_body(&self, body: &[u8]) -> Result<(), AuthError> {
        let digest: [u8; 32] = Sha256::digest(body).into();
        // Not secret: the digest was sent in the clear.
        if digest == self.body_sha256 {
            Ok(())
        } else {
            Err(AuthError::BodyMismatch)
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn feed(mac: &mut HmacSha256, fields: &CallFields<'_>, timestamp: &str, nonce: &str, body: &str) {
    for part in [
        VERSION,
        fields.revision,
        fields.label,
        fields.function,
        fields.deadline_ms,
        fields.caller,
        timestamp,
        nonce,
        body,
    ] {
        // Length-prefixed, so no two field lists feed the same bytes.
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part.as_bytes());
    }
}

/// Makes the nonces of one process: a random prefix and a counter, so two
/// calls never share one.
struct Nonces {
    prefix: u64,
    counter: AtomicU64,
}

fn nonces() -> &'static Nonces {
    static NONCES: std::sync::OnceLock<Nonces> = std::sync::OnceLock::new();
    NONCES.get_or_init(|| {
        let mut bytes = [0u8; 8];
        // Without OS randomness, the clock keeps prefixes of restarts apart.
        if getrandom::getrandom(&mut bytes).is_err() {
            bytes = now_ms().to_be_bytes();
        }
        Nonces {
            prefix: u64::from_be_bytes(bytes),
            counter: AtomicU64::new(0),
        }
    })
}

/// The `amimono-auth` header value for a call with `fields` and `body`.
pub fn sign(key: &ClusterKey, fields: &CallFields<'_>, body: &[u8]) -> String {
    sign_at(key, fields, body, now_ms())
}

fn sign_at(key: &ClusterKey, fields: &CallFields<'_>, body: &[u8], timestamp_ms: u64) -> String {
    let n = nonces();
    let nonce = format!(
        "{:016x}{:016x}",
        n.prefix,
        n.counter.fetch_add(1, Ordering::Relaxed)
    );
    let timestamp = timestamp_ms.to_string();
    let body = hex::encode(Sha256::digest(body));
    let mut mac = key.mac();
    feed(&mut mac, fields, &timestamp, &nonce, &body);
    let tag = hex::encode(mac.finalize().into_bytes());
    format!("{VERSION}.{timestamp}.{nonce}.{body}.{tag}")
}

/// Nonces of calls accepted within the replay window.
#[derive(Default)]
pub struct ReplayGuard {
    seen: Mutex<SeenNonces>,
}

#[derive(Default)]
struct SeenNonces {
    set: HashSet<[u8; 16]>,
    /// (expiry in ms, nonce), oldest first.
    order: VecDeque<(u64, [u8; 16])>,
}

impl ReplayGuard {
    /// Records `nonce`, seen at `now` and valid until `expires`; an error if it
    /// was seen already.
    fn remember(&self, nonce: [u8; 16], now: u64, expires: u64) -> Result<(), AuthError> {
        let Ok(mut seen) = self.seen.lock() else {
            return Err(AuthError::Overloaded);
        };
        while seen.order.front().is_some_and(|(expiry, _)| *expiry < now) {
            if let Some((_, old)) = seen.order.pop_front() {
                seen.set.remove(&old);
            }
        }
        if seen.set.contains(&nonce) {
            return Err(AuthError::Replayed);
        }
        if seen.set.len() >= MAX_REMEMBERED_NONCES {
            return Err(AuthError::Overloaded);
        }
        seen.set.insert(nonce);
        // Expiries arrive almost in order; an early one behind a later one
        // only lives a little longer.
        seen.order.push_back((expires, nonce));
        Ok(())
    }
}

/// Checks the `amimono-auth` header value `header` of a call with `fields`
/// against `key` (no body needed yet). On success the body digest remains
/// to be checked with [`Verified::check_body`].
pub fn verify(
    key: &ClusterKey,
    fields: &CallFields<'_>,
    header: Option<&str>,
    replay: &ReplayGuard,
) -> Result<Verified, AuthError> {
    verify_at(key, fields, header, replay, now_ms())
}

/// [`verify`] at the clock reading `now_ms` (for tests and fuzzing).
pub fn verify_at(
    key: &ClusterKey,
    fields: &CallFields<'_>,
    header: Option<&str>,
    replay: &ReplayGuard,
    now_ms: u64,
) -> Result<Verified, AuthError> {
    let header = header.ok_or(AuthError::Missing)?;
    let mut parts = header.split('.');
    let (Some(VERSION), Some(timestamp), Some(nonce), Some(body), Some(tag), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(AuthError::Malformed);
    };
    let is_digits = !timestamp.is_empty()
        && timestamp.len() <= 20
        && timestamp.bytes().all(|b| b.is_ascii_digit());
    let timestamp_ms: u64 = match timestamp.parse() {
        Ok(ms) if is_digits => ms,
        _ => return Err(AuthError::Malformed),
    };
    let mut nonce_bytes = [0u8; 16];
    let mut body_sha256 = [0u8; 32];
    let mut tag_bytes = [0u8; 32];
    let lowercase_hex = |s: &str| s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !lowercase_hex(nonce) || !lowercase_hex(body) || !lowercase_hex(tag) {
        return Err(AuthError::Malformed);
    }
    hex::decode_to_slice(nonce, &mut nonce_bytes).map_err(|_| AuthError::Malformed)?;
    hex::decode_to_slice(body, &mut body_sha256).map_err(|_| AuthError::Malformed)?;
    hex::decode_to_slice(tag, &mut tag_bytes).map_err(|_| AuthError::Malformed)?;
    let mut mac = key.mac();
    feed(&mut mac, fields, timestamp, nonce, body);
    // Constant-time comparison.
    mac.verify_slice(&tag_bytes)
        .map_err(|_| AuthError::BadMac)?;
    let window = u64::try_from(REPLAY_WINDOW.as_millis()).unwrap_or(u64::MAX);
    let skew_ms = now_ms.abs_diff(timestamp_ms);
    if skew_ms > window {
        return Err(AuthError::Stale { skew_ms });
    }
    replay.remember(nonce_bytes, now_ms, timestamp_ms.saturating_add(window))?;
    Ok(Verified { body_sha256 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> ClusterKey {
        ClusterKey::from_bytes(&[byte; 32]).unwrap()
    }

    const FIELDS: CallFields<'static> = CallFields {
        revision: "rev1",
        label: "greeter",
        function: "hello:app/greeter@0.1.0#greet",
        deadline_ms: "30000",
        caller: "web",
    };

    #[test]
    fn a_signed_call_verifies_once() {
        let guard = ReplayGuard::default();
        let header = sign(&key(1), &FIELDS, b"body");
        let verified = verify(&key(1), &FIELDS, Some(&header), &guard).unwrap();
        verified.check_body(b"body").unwrap();
        assert_eq!(verified.check_body(b"other"), Err(AuthError::BodyMismatch));
        assert_eq!(
            verify(&key(1), &FIELDS, Some(&header), &guard).unwrap_err(),
            AuthError::Replayed
        );
    }

    #[test]
    fn every_field_is_covered() {
        let guard = ReplayGuard::default();
        let header = sign(&key(1), &FIELDS, b"");
        let altered = [
            CallFields {
                revision: "rev2",
                ..FIELDS
            },
            CallFields {
                label: "phrasebook",
                ..FIELDS
            },
            CallFields {
                function: "hello:app/greeter@0.1.0#greet-in",
                ..FIELDS
            },
            CallFields {
                deadline_ms: "18446744073709551615",
                ..FIELDS
            },
            CallFields {
                caller: "backend",
                ..FIELDS
            },
        ];
        for fields in altered {
            assert_eq!(
                verify(&key(1), &fields, Some(&header), &guard).unwrap_err(),
                AuthError::BadMac,
                "{fields:?}"
            );
        }
    }

    #[test]
    fn other_keys_missing_malformed_and_stale_calls_are_refused() {
        let guard = ReplayGuard::default();
        let header = sign(&key(1), &FIELDS, b"");
        assert_eq!(
            verify(&key(2), &FIELDS, Some(&header), &guard).unwrap_err(),
            AuthError::BadMac
        );
        assert_eq!(
            verify(&key(1), &FIELDS, None, &guard).unwrap_err(),
            AuthError::Missing
        );
        for bad in [
            "",
            "v1",
            "v2.1.2.3.4",
            &format!("{header}.x"),
            "v1.x.00.00.00",
        ] {
            assert_eq!(
                verify(&key(1), &FIELDS, Some(bad), &guard).unwrap_err(),
                AuthError::Malformed,
                "{bad}"
            );
        }
        let old = sign_at(&key(1), &FIELDS, b"", now_ms() - 31_000);
        assert!(matches!(
            verify(&key(1), &FIELDS, Some(&old), &guard).unwrap_err(),
            AuthError::Stale { .. }
        ));
    }

    #[test]
    fn keys_are_never_printed() {
        assert_eq!(format!("{:?}", key(7)), "ClusterKey(<redacted>)");
        assert!(ClusterKey::from_bytes(&[0; 31]).is_none());
    }
}
