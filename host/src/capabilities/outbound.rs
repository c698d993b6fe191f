//! `wasi:http/outgoing-handler`, per component: a request leaves only if its
//! scheme, host and port match the component's `allowed_outbound_hosts`
//! (`"https://api.example.com"`, `"http://127.0.0.1:8080"`,
//! `"https://*.example.com"`, `"http://localhost:*"`). Anything else gets the
//! WASI error `HttpRequestDenied` and a log line naming the component. A
//! component without the key (or with `[]`) still links — componentize-py,
//! componentize-js and many Spin components import the interface whether or
//! not they use it — and every request it makes is denied. Only the
//! outbound request's own authority is ever checked: an inbound request's
//! `Host` header cannot redirect a call (the class of bug of Spin's
//! CVE-2024-32980), and a request without an authority is denied.

use super::{Capability, JobCapability, JobSetup, MemberInterface, per_member};
use crate::host_state::HostState;
use crate::wasmtime_error::IntoAnyhow;
use anyhow::Result;
use std::sync::Arc;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi_http::p2::bindings::http::outgoing_handler::Host as OutgoingHandler;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::types::HostOutgoingRequest;
use wasmtime_wasi_http::{RequestOptions, WasiHttpView};

/// One `allowed_outbound_hosts` entry, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    scheme: String,
    /// The host, or `*.suffix` for any subdomain of `suffix`.
    host: String,
    /// `None` for any port.
    port: Option<u16>,
}

impl AllowedHost {
    /// Parses `scheme://host[:port|:*]`.
    pub fn parse(entry: &str) -> Result<AllowedHost, String> {
        let expected =
            "expected `http://host`, `https://host:port`, `https://*.domain` or `http://host:*`";
        let (scheme, rest) = entry
            .split_once("://")
            .ok_or_else(|| format!("`{entry}`: {expected}"))?;
        if scheme != "http" && scheme != "https" {
            return Err(format!("`{entry}`: the scheme must be http or https"));
        }
        let rest = rest.trim_end_matches('/');
        if rest.is_empty() || rest.contains('/') {
            return Err(format!("`{entry}`: {expected}"));
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, "*")) => (host, None),
            Some((host, port)) => (
                host,
                Some(
                    port.parse::<u16>()
                        .map_err(|_| format!("`{entry}`: `{port}` is not a port"))?,
                ),
            ),
            None => (rest, Some(if scheme == "https" { 443 } else { 80 })),
        };
        if host.is_empty() || (host.contains('*') && !host.starts_with("*.")) {
            return Err(format!("`{entry}`: {expected}"));
        }
        Ok(AllowedHost {
            scheme: scheme.to_string(),
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    fn permits(&self, scheme: &str, host: &str, port: u16) -> bool {
        let host_matches = match self.host.strip_prefix("*.") {
            Some(suffix) => host.len() > suffix.len() + 1 && host.ends_with(&format!(".{suffix}")),
            None => host == self.host,
        };
        self.scheme == scheme && host_matches && self.port.is_none_or(|p| p == port)
    }
}

/// Whether `allowed` lets a request to `scheme://authority` out.
pub fn permitted(allowed: &[AllowedHost], scheme: &str, authority: &str) -> bool {
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => {
            match port.parse() {
                Ok(port) => (host, port),
                Err(_) => return false,
            }
        }
        _ => (authority, if scheme == "https" { 443 } else { 80 }),
    };
    let host = host.to_ascii_lowercase();
    allowed.iter().any(|a| a.permits(scheme, &host, port))
}

/// `wasi:http/outgoing-handler`.
pub const OUTGOING_HANDLER: MemberInterface =
    MemberInterface::new("wasi:http/outgoing-handler", "http-outgoing-handler");

/// Outbound HTTP, per component. Never refused when linking: every
/// componentize-py and componentize-js HTTP component (and many Spin
/// components) imports `wasi:http/outgoing-handler` whether or not it sends
/// requests. An ungranted import links and denies every request when it is
/// made, as Spin and wasmtime do.
pub struct Outbound;

#[async_trait::async_trait]
impl Capability for Outbound {
    fn name(&self) -> &'static str {
        "outbound HTTP"
    }

    fn interfaces(&self) -> &'static [MemberInterface] {
        &[OUTGOING_HANDLER]
    }

    async fn open(&self, job: &JobSetup<'_>) -> Result<Arc<dyn JobCapability>> {
        // Entries were checked when the manifest was read.
        let allowed = |spec: &crate::manifest::ComponentSpec| {
            Ok(spec
                .allowed_outbound_hosts
                .iter()
                .filter_map(|h| AllowedHost::parse(h).ok())
                .collect())
        };
        per_member(job, allowed, add_handler)
    }
}

/// Defines `wasi:http/outgoing-handler` for member `label`.
fn add_handler(
    linker: &mut Linker<HostState>,
    import_name: &str,
    label: &str,
    allowed: Arc<Vec<AllowedHost>>,
) -> Result<()> {
    let mut instance = super::member_instance(linker, import_name)?;
    let label = label.to_string();
    instance
        .func_wrap(
            "handle",
            move |mut store,
                  (request, options): (Resource<HostOutgoingRequest>, Option<Resource<RequestOptions>>)| {
                let (scheme, authority) = {
                    let r = store.data_mut().table().get(&request)?;
                    let scheme = match &r.scheme {
                        None | Some(Scheme::Https) => "https".to_string(),
                        Some(Scheme::Http) => "http".to_string(),
                        Some(Scheme::Other(other)) => other.clone(),
                    };
                    (scheme, r.authority.clone())
                };
                let allowed_here = authority
                    .as_deref()
                    .is_some_and(|a| permitted(&allowed, &scheme, a));
                if !allowed_here {
                    let url = format!("{scheme}://{}", authority.as_deref().unwrap_or("<no authority>"));
                    if allowed.is_empty() {
                        tracing::warn!(
                            component = %label,
                            url = %url,
                            "outbound HTTP request denied: the component is granted no outbound hosts (`allowed_outbound_hosts` is absent or empty)"
                        );
                    } else {
                        tracing::warn!(
                            component = %label,
                            url = %url,
                            "outbound HTTP request denied: not in the component's allowed_outbound_hosts"
                        );
                    }
                    let _ = store.data_mut().table().delete(request);
                    return Ok((Err(ErrorCode::HttpRequestDenied),));
                }
                match OutgoingHandler::handle(&mut store.data_mut().http(), request, options) {
                    Ok(response) => Ok((Ok(response),)),
                    Err(e) => Ok((Err(e.downcast()?),)),
                }
            },
        )
        .anyhow()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(entries: &[&str]) -> Vec<AllowedHost> {
        entries
            .iter()
            .map(|e| AllowedHost::parse(e).unwrap())
            .collect()
    }

    #[test]
    fn matching() {
        let a = allowed(&[
            "https://api.example.com",
            "http://127.0.0.1:8080",
            "https://*.cdn.net",
            "http://localhost:*",
        ]);
        assert!(permitted(&a, "https", "api.example.com"));
        assert!(permitted(&a, "https", "API.example.com:443"));
        assert!(!permitted(&a, "http", "api.example.com"));
        assert!(!permitted(&a, "https", "api.example.com:8443"));
        assert!(permitted(&a, "http", "127.0.0.1:8080"));
        assert!(!permitted(&a, "http", "127.0.0.1:8081"));
        assert!(permitted(&a, "https", "img.cdn.net"));
        assert!(!permitted(&a, "https", "cdn.net"));
        assert!(!permitted(&a, "https", "evilcdn.net"));
        assert!(permitted(&a, "http", "localhost:1234"));
        assert!(!permitted(&a, "http", "localhost.evil.com"));
    }

    #[test]
    fn no_entries_deny_everything() {
        for (scheme, authority) in [
            ("http", "127.0.0.1:8080"),
            ("https", "api.example.com"),
            ("http", "localhost"),
        ] {
            assert!(!permitted(&[], scheme, authority), "{scheme}://{authority}");
        }
    }

    #[test]
    fn bad_entries_are_explained() {
        for bad in [
            "api.example.com",
            "ftp://x",
            "https://x/path",
            "https://*x.com",
            "https://x:port",
        ] {
            assert!(AllowedHost::parse(bad).is_err(), "{bad}");
        }
    }
}
