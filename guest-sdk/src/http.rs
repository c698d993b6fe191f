//! A small request/response model for components that serve
//! `wasi:http/incoming-handler`.
//!
//! Implement [`Handler`] and register it with [`http_component!`](crate::http_component):
//! the generated glue reads the whole request body (up to [`MAX_BODY_BYTES`],
//! answering `413` above that), calls [`Handler::handle`] and writes the
//! [`Response`] back. A panic in the handler traps the instance; the host turns
//! that into a `500`.

use wasip2::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use wasip2::io::streams::StreamError;

/// The largest request body the glue reads; larger bodies get a `413`.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// The largest chunk written with one `blocking-write-and-flush` call.
const WRITE_CHUNK: usize = 4096;

/// How much is asked for per read of the request body.
const READ_CHUNK: u64 = 64 * 1024;

/// An HTTP request, with its body read in full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    method: String,
    authority: Option<String>,
    path_with_query: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl Request {
    /// A request without headers or body, e.g. to test a [`Handler`].
    /// `method` is upper-cased (`GET`, `POST`, ...).
    pub fn new(method: impl Into<String>, path_with_query: impl Into<String>) -> Self {
        Request {
            method: method.into().to_ascii_uppercase(),
            authority: None,
            path_with_query: path_with_query.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Replaces the body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The method, upper-case: `GET`, `POST`, ...
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The authority the client addressed (its `Host` header), if any.
    /// Never trust it to build outbound URLs.
    pub fn authority(&self) -> Option<&str> {
        self.authority.as_deref()
    }

    /// The path and query as received, e.g. `/hello/world?lang=fr`.
    pub fn path_with_query(&self) -> &str {
        &self.path_with_query
    }

    /// The path without the query, e.g. `/hello/world`. Not percent-decoded
    /// (see [`percent_decode`]).
    pub fn path(&self) -> &str {
        match self.path_with_query.split_once('?') {
            Some((path, _)) => path,
            None => &self.path_with_query,
        }
    }

    /// The raw query string after `?`, if there is one.
    pub fn query(&self) -> Option<&str> {
        self.path_with_query.split_once('?').map(|(_, query)| query)
    }

    /// The first value of the query parameter `name`, percent-decoded (`+`
    /// counts as a space). A parameter without `=` has the empty value.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query()?.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode_form(key) == name).then(|| decode_form(value))
        })
    }

    /// The first value of the header `name` (compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_slice())
    }

    /// All headers, in the order received.
    pub fn headers(&self) -> &[(String, Vec<u8>)] {
        &self.headers
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }
}

/// An HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl Response {
    /// An empty response with this status.
    pub fn new(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A `text/plain; charset=utf-8` response.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Response::new(status)
            .with_header("content-type", "text/plain; charset=utf-8")
            .with_body(body.into())
    }

    /// An `application/json` response; `body` must already be JSON.
    pub fn json(status: u16, body: impl Into<String>) -> Self {
        Response::new(status)
            .with_header("content-type", "application/json")
            .with_body(body.into())
    }

    /// Adds a header. Headers the host rejects (invalid syntax, forbidden
    /// names such as `connection`) are skipped when the response is sent.
    /// `content-length` is always set by the glue from the body.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Replaces the body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The first value of the header `name` (compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_slice())
    }

    /// All headers, in the order added.
    pub fn headers(&self) -> &[(String, Vec<u8>)] {
        &self.headers
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }
}

/// Turns a [`Request`] into a [`Response`]. Register the implementing type
/// with [`http_component!`](crate::http_component).
pub trait Handler {
    /// Handles one request. Each request runs in a fresh instance.
    fn handle(request: Request) -> Response;
}

/// Decodes `%XX` escapes; malformed escapes are kept as they are, and bytes
/// that are not UTF-8 become U+FFFD. `+` is left alone (use it for path
/// segments; [`Request::query_param`] also turns `+` into a space).
pub fn percent_decode(input: &str) -> String {
    decode(input, false)
}

fn decode_form(input: &str) -> String {
    decode(input, true)
}

fn decode(input: &str, plus_is_space: bool) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match (hex_value(bytes[i + 1]), hex_value(bytes[i + 2])) {
                    (Some(high), Some(low)) => {
                        out.push(high << 4 | low);
                        i += 3;
                    }
                    _ => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    match String::from_utf8(out) {
        Ok(text) => text,
        Err(err) => String::from_utf8_lossy(err.as_bytes()).into_owned(),
    }
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

fn method_name(method: Method) -> String {
    match method {
        Method::Get => "GET".into(),
        Method::Head => "HEAD".into(),
        Method::Post => "POST".into(),
        Method::Put => "PUT".into(),
        Method::Delete => "DELETE".into(),
        Method::Connect => "CONNECT".into(),
        Method::Options => "OPTIONS".into(),
        Method::Trace => "TRACE".into(),
        Method::Patch => "PATCH".into(),
        Method::Other(other) => other,
    }
}

/// Why the request could not be read.
enum ReadError {
    TooLarge,
    Failed,
}

/// Reads the request: method, path, headers and the whole body.
fn read_request(request: IncomingRequest) -> Result<Request, ReadError> {
    let method = method_name(request.method());
    let path_with_query = request.path_with_query().unwrap_or_else(|| "/".into());
    let authority = request.authority();
    let headers = {
        // A child resource: drop it before the request goes away.
        let fields = request.headers();
        fields.entries()
    };

    let declared = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| std::str::from_utf8(value).ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return Err(ReadError::TooLarge);
    }

    let incoming = request.consume().map_err(|()| ReadError::Failed)?;
    let mut body = Vec::with_capacity(declared.map_or(0, |length| length as usize));
    {
        let stream = incoming.stream().map_err(|()| ReadError::Failed)?;
        loop {
            match stream.blocking_read(READ_CHUNK) {
                Ok(chunk) => {
                    if body.len() + chunk.len() > MAX_BODY_BYTES {
                        return Err(ReadError::TooLarge);
                    }
                    body.extend_from_slice(&chunk);
                }
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(_)) => return Err(ReadError::Failed),
            }
        }
        // The stream is a child of the body: it is dropped here, first.
    }
    drop(wasip2::http::types::IncomingBody::finish(incoming));

    Ok(Request {
        method,
        authority,
        path_with_query,
        headers,
        body,
    })
}

/// Sends `response` through `out`. Never traps on bad headers: the host
/// rejects them one by one and they are skipped.
fn write_response(response: Response, out: ResponseOutparam) {
    let Response {
        status,
        headers,
        mut body,
    } = response;
    // These statuses never carry a body.
    if status < 200 || status == 204 || status == 304 {
        body.clear();
    }

    let fields = Fields::new();
    for (name, value) in &headers {
        if name.eq_ignore_ascii_case("content-length") {
            continue;
        }
        // Invalid or forbidden headers are skipped.
        let _ = fields.append(name, value);
    }
    if !(status < 200 || status == 204 || status == 304) {
        let _ = fields.append("content-length", body.len().to_string().as_bytes());
    }

    let outgoing = OutgoingResponse::new(fields);
    if outgoing.set_status_code(status).is_err() {
        // Not a valid status code: answer 500 rather than trap.
        let _ = outgoing.set_status_code(500);
    }
    let Ok(outgoing_body) = outgoing.body() else {
        ResponseOutparam::set(out, Ok(outgoing));
        return;
    };
    ResponseOutparam::set(out, Ok(outgoing));

    if let Ok(stream) = outgoing_body.write() {
        for chunk in body.chunks(WRITE_CHUNK) {
            if stream.blocking_write_and_flush(chunk).is_err() {
                // The client went away; nothing more to do.
                break;
            }
        }
        // The stream is a child of the body: drop it before finishing.
        drop(stream);
    }
    let _ = OutgoingBody::finish(outgoing_body, None);
}

/// Serves one request with `H`. Called by the code that
/// [`http_component!`](crate::http_component) generates; not a public API.
#[doc(hidden)]
pub fn __serve<H: Handler>(request: IncomingRequest, out: ResponseOutparam) {
    let response = match read_request(request) {
        Ok(request) => H::handle(request),
        Err(ReadError::TooLarge) => Response::text(
            413,
            format!("request body larger than {MAX_BODY_BYTES} bytes\n"),
        ),
        Err(ReadError::Failed) => Response::text(400, "failed to read the request body\n"),
    };
    write_response(response, out);
}

/// Exports a [`Handler`] as this component's `wasi:http/incoming-handler`.
///
/// Use it once per component, at the crate root:
///
/// ```no_run
/// use amimono_sdk::http::{Handler, Request, Response};
///
/// struct Echo;
///
/// impl Handler for Echo {
///     fn handle(request: Request) -> Response {
///         Response::new(200).with_body(request.body().to_vec())
///     }
/// }
///
/// amimono_sdk::http_component!(Echo);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! http_component {
    ($handler:ty) => {
        const _: () = {
            struct __AmimonoHttpComponent;

            impl $crate::__private::wasip2::exports::http::incoming_handler::Guest
                for __AmimonoHttpComponent
            {
                fn handle(
                    request: $crate::__private::wasip2::http::types::IncomingRequest,
                    response_out: $crate::__private::wasip2::http::types::ResponseOutparam,
                ) {
                    $crate::http::__serve::<$handler>(request, response_out)
                }
            }

            // Only when building the component: native linkers reject the
            // export's symbol name (`wasi:http/incoming-handler@0.2.12#handle`).
            #[cfg(target_arch = "wasm32")]
            $crate::__private::wasip2::http::proxy::export!(
                __AmimonoHttpComponent with_types_in $crate::__private::wasip2
            );
            // Natively, still mark the handler as used (no dead-code warnings).
            #[cfg(not(target_arch = "wasm32"))]
            const _: fn($crate::http::Request) -> $crate::http::Response =
                <$handler as $crate::http::Handler>::handle;
        };
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_and_query() {
        let request = Request::new("get", "/hello/w%C3%B6rld?lang=fr&x=a+b%21&flag");
        assert_eq!(request.method(), "GET");
        assert_eq!(request.path(), "/hello/w%C3%B6rld");
        assert_eq!(request.query(), Some("lang=fr&x=a+b%21&flag"));
        assert_eq!(request.query_param("lang").as_deref(), Some("fr"));
        assert_eq!(request.query_param("x").as_deref(), Some("a b!"));
        assert_eq!(request.query_param("flag").as_deref(), Some(""));
        assert_eq!(request.query_param("missing"), None);
        assert_eq!(Request::new("GET", "/").query(), None);
    }

    #[test]
    fn decoding() {
        assert_eq!(percent_decode("w%C3%B6rld"), "wörld");
        assert_eq!(percent_decode("a+b%20c"), "a+b c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%ff"), "\u{fffd}");
    }

    #[test]
    fn headers_are_case_insensitive() {
        let request = Request::new("GET", "/").with_header("X-Thing", "1");
        assert_eq!(request.header("x-thing"), Some(&b"1"[..]));
        let response = Response::text(200, "hi");
        assert_eq!(
            response.header("Content-Type"),
            Some(&b"text/plain; charset=utf-8"[..])
        );
        assert_eq!(response.body(), b"hi");
    }
}

/// An outbound HTTP response: status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The status code.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
}

/// Sends a GET to `url` (`http://host[:port]/path` or `https://…`) through
/// `wasi:http/outgoing-handler` and reads the whole answer. The host allows
/// only the hosts the manifest lists in `allowed_outbound_hosts`; a denied
/// request is an error mentioning `HttpRequestDenied`.
pub fn fetch(url: &str) -> Result<Fetched, String> {
    use wasip2::http::outgoing_handler;
    use wasip2::http::types::{Fields, Method, OutgoingRequest, Scheme};
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("http://") {
        (Scheme::Http, rest)
    } else if let Some(rest) = url.strip_prefix("https://") {
        (Scheme::Https, rest)
    } else {
        return Err(format!("`{url}` is not an http(s) URL"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let request = OutgoingRequest::new(Fields::new());
    request
        .set_method(&Method::Get)
        .map_err(|()| "invalid method".to_string())?;
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| "invalid scheme".to_string())?;
    request
        .set_authority(Some(authority))
        .map_err(|()| format!("invalid authority `{authority}`"))?;
    request
        .set_path_with_query(Some(path))
        .map_err(|()| format!("invalid path `{path}`"))?;
    let pending = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    let response = loop {
        match pending.get() {
            Some(result) => break result,
            None => pending.subscribe().block(),
        }
    };
    let response = response
        .map_err(|()| "the response was already taken".to_string())?
        .map_err(|e| format!("{e:?}"))?;
    let status = response.status();
    let body = response
        .consume()
        .map_err(|()| "the response body was already taken".to_string())?;
    let stream = body
        .stream()
        .map_err(|()| "the response body stream was already taken".to_string())?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(e) => return Err(format!("reading the response body: {e:?}")),
        }
    }
    drop(stream);
    Ok(Fetched {
        status,
        body: bytes,
    })
}
