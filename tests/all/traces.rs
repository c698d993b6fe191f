//! Traces exported over OTLP/HTTP to a real receiver: the test's own
//! server, which decodes each `POST /v1/traces` body with the OpenTelemetry
//! project's protobuf definitions (`opentelemetry-proto`; no Jaeger or
//! Collector package can be installed here). One request to the split hello
//! app must yield one trace whose spans cover frontend, greeter and
//! phrasebook across the two processes, each span's parent the span that
//! caused it.

use crate::metrics::split_hello;
use amimono_tests::get;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One span as received, with the service that sent it.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    name: String,
    kind: i32,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent_span_id: Vec<u8>,
    component: Option<String>,
    /// The `url.path` of an HTTP server span.
    path: Option<String>,
    /// How long it lasted, from its start and end times.
    duration: Duration,
    /// Its status code: 0 unset, 1 ok, 2 error.
    status: i32,
}

/// An OTLP/HTTP receiver on a loopback port of its own.
struct Receiver {
    endpoint: String,
    spans: Arc<Mutex<Vec<Received>>>,
}

fn text(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes.iter().find(|a| a.key == key).and_then(|a| {
        match a.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.clone()),
            _ => None,
        }
    })
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let spans = Arc::new(Mutex::new(Vec::new()));
        let store = spans.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let store = store.clone();
                std::thread::spawn(move || serve_connection(stream, &store));
            }
        });
        Receiver { endpoint, spans }
    }

    /// Waits (60 s at most) until `done` holds for the spans received.
    fn wait_for(&self, what: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            let spans = self.spans.lock().unwrap().clone();
            if done(&spans) {
                return spans;
            }
            assert!(
                Instant::now() < until,
                "no {what} within 60 s; received: {spans:#?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Serves OTLP/HTTP requests on one connection until it closes.
fn serve_connection(stream: TcpStream, spans: &Mutex<Vec<Received>>) {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    while let Some((request_line, headers)) = read_head(&mut reader) {
        let length = header(&headers, "content-length").map_or(0, |v| v.parse().unwrap());
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        assert!(
            request_line.starts_with("POST /v1/traces "),
            "unexpected OTLP request: {request_line}"
        );
        let export = ExportTraceServiceRequest::decode(body.as_slice())
            .expect("the body is an OTLP ExportTraceServiceRequest");
        for resource_spans in export.resource_spans {
            let resource = resource_spans.resource.unwrap_or_default();
            let service = text(&resource.attributes, "service.name").unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    spans.lock().unwrap().push(Received {
                        service: service.clone(),
                        component: text(&span.attributes, "amimono.component"),
                        path: text(&span.attributes, "url.path"),
                        duration: Duration::from_nanos(
                            span.end_time_unix_nano
                                .saturating_sub(span.start_time_unix_nano),
                        ),
                        status: span.status.as_ref().map_or(0, |status| status.code),
                        name: span.name,
                        kind: span.kind,
                        trace_id: span.trace_id,
                        span_id: span.span_id,
                        parent_span_id: span.parent_span_id,
                    });
                }
            }
        }
        let reply = ExportTraceServiceResponse::default().encode_to_vec();
        write!(
            writer,
            "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: {}\r\n\r\n",
            reply.len()
        )
        .unwrap();
        writer.write_all(&reply).unwrap();
    }
}

/// A request's line and headers (names lowercase); `None` at the end of
/// the connection.
fn read_head(reader: &mut impl BufRead) -> Option<(String, Vec<(String, String)>)> {
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
        return None;
    }
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            return Some((request_line, headers));
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
        }
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// The split hello app exporting its spans to `receiver` (within 100 ms),
/// with `env` besides: (web host, backend host).
fn traced_split_hello(
    receiver: &Receiver,
    dir: &std::path::Path,
    env: &[(&str, &str)],
) -> (amimono_tests::Host, amimono_tests::Host) {
    let mut all = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    all.extend_from_slice(env);
    let (web, backend, _, _) = split_hello(dir, &all);
    (web, backend)
}

/// OTLP span kinds.
const SERVER: i32 = 2;
const CLIENT: i32 = 3;
const INTERNAL: i32 = 1;

#[test]
fn one_request_to_the_split_hello_app_is_one_trace_across_both_jobs() {
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let (web, _backend) = traced_split_hello(
        &receiver,
        dir.path(),
        &[("AMIMONO_LOCAL_SAMPLE_RATIO", "1")],
    );
    let reply = get(&format!("{}/hello/ada", web.url("frontend")));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let find = |spans: &[Received], service: &str, kind: i32, component: &str| {
        spans
            .iter()
            .find(|s| {
                s.service == service && s.kind == kind && s.component.as_deref() == Some(component)
            })
            .cloned()
    };
    let spans = receiver.wait_for("span of the phrasebook call", |spans| {
        find(spans, "hello/backend", INTERNAL, "phrasebook").is_some()
            && find(spans, "hello/web", SERVER, "frontend").is_some()
            && find(spans, "hello/web", CLIENT, "frontend").is_some()
            && find(spans, "hello/backend", SERVER, "greeter").is_some()
    });
    let ingress = find(&spans, "hello/web", SERVER, "frontend").unwrap();
    let call = find(&spans, "hello/web", CLIENT, "frontend").unwrap();
    let served = find(&spans, "hello/backend", SERVER, "greeter").unwrap();
    let local = find(&spans, "hello/backend", INTERNAL, "phrasebook").unwrap();
    assert!(ingress.parent_span_id.is_empty(), "{ingress:?}");
    assert_eq!(ingress.name, "GET frontend");
    assert_eq!(call.name, "greeter.greet-in", "{call:?}");
    assert_eq!(local.name, "phrasebook.phrase", "{local:?}");
    for span in [&call, &served, &local] {
        assert_eq!(span.trace_id, ingress.trace_id, "one trace: {spans:#?}");
    }
    assert_eq!(call.parent_span_id, ingress.span_id, "{spans:#?}");
    assert_eq!(served.parent_span_id, call.span_id, "{spans:#?}");
    assert_eq!(local.parent_span_id, served.span_id, "{spans:#?}");
    assert_eq!(
        spans
            .iter()
            .filter(|s| s.trace_id == ingress.trace_id)
            .count(),
        4,
        "exactly the four spans of the request: {spans:#?}"
    );
}

#[test]
fn an_incoming_traceparent_is_continued() {
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let (web, _backend) = traced_split_hello(&receiver, dir.path(), &[]);
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let reply = ureq::get(&format!("{}/hello/bob", web.url("frontend")))
        .header("traceparent", &format!("00-{trace}-00f067aa0ba902b7-01"))
        .call()
        .unwrap();
    assert_eq!(reply.status(), 200);
    let spans = receiver.wait_for("the greeter's server span", |spans| {
        spans
            .iter()
            .any(|s| s.kind == SERVER && s.component.as_deref() == Some("greeter"))
    });
    let ingress = spans
        .iter()
        .find(|s| s.kind == SERVER && s.component.as_deref() == Some("frontend"))
        .unwrap();
    assert_eq!(hex(&ingress.trace_id), trace);
    assert_eq!(hex(&ingress.parent_span_id), "00f067aa0ba902b7");
    for span in &spans {
        assert_eq!(hex(&span.trace_id), trace, "{spans:#?}");
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A component's outgoing HTTP request carries the trace of the request it
/// serves: with no exporter, the incoming `traceparent` itself.
#[test]
fn outgoing_http_from_a_component_carries_the_traceparent() {
    let target = TcpListener::bind("127.0.0.1:0").unwrap();
    let allowed = format!("http://{}", target.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(None::<String>));
    let record = seen.clone();
    std::thread::spawn(move || {
        let (stream, _) = target.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut writer = stream;
        let (_, headers) = read_head(&mut reader).unwrap();
        *record.lock().unwrap() = header(&headers, "traceparent").map(str::to_string);
        writer
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
            .unwrap();
    });
    let app = amimono_tests::temp_app(&format!(
        "[app]\nname = \"caps\"\n\n[keyvalue]\nbackend = \"memory\"\n\n[components.caps]\nbinding = \"http\"\n\
         source = \"{{wasm:fixture_capabilities}}\"\nkeyvalue = [\"data\"]\nconfig = {{ x = \"1\" }}\n\
         allowed_outbound_hosts = [\"{allowed}\"]\n\n[jobs.one]\ncomponents = [\"caps\"]\n"
    ));
    let host = amimono_tests::Host::start(app.path(), &[("AMIMONO_JOB", "one")], &["caps"]);
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let reply = ureq::get(&format!("{}/fetch?url={allowed}/x", host.url("caps")))
        .header("traceparent", traceparent)
        .call()
        .unwrap();
    assert_eq!(reply.status(), 200);
    assert_eq!(seen.lock().unwrap().as_deref(), Some(traceparent));
}

/// OTLP status code of a failed span.
const ERROR: i32 = 2;

/// The server span of an answer streamed after its head lasts until the
/// last byte of the body (the guest waits 400 ms between two pieces, so the
/// span lasts at least that long, however loaded the machine); a body that
/// fails after the head (the guest traps while streaming) is an error span,
/// though its status line said 200.
#[test]
fn a_streamed_answer_is_traced_until_its_last_byte_and_a_body_that_fails_is_an_error() {
    let receiver = Receiver::start();
    let app = amimono_tests::temp_app(
        "[app]\nname = \"edge\"\n\n[components.edge]\nbinding = \"http\"\n\
         source = \"{wasm:fixture_edge_http}\"\n\n[components.probe]\nbinding = \"rpc\"\n\
         source = \"{wasm:fixture_trap_http}\"\n\n[jobs.one]\ncomponents = [\"edge\", \"probe\"]\n",
    );
    let host = amimono_tests::Host::start(
        app.path(),
        &[
            ("AMIMONO_JOB", "one"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
        &["edge"],
    );
    let url = host.url("edge");
    let reply = get(&format!("{url}/slow-body?ms=400"));
    assert_eq!((reply.status, reply.body.as_str()), (200, "first\nlast\n"));
    // The client sees a broken body: what it reads does not matter here.
    let broken = ureq::get(&format!("{url}/trap-after-response"))
        .call()
        .and_then(|mut answer| answer.body_mut().read_to_string());
    assert!(broken.is_err(), "{broken:?}");

    let server_span = |spans: &[Received], path: &str| {
        spans
            .iter()
            .find(|s| s.kind == SERVER && s.path.as_deref() == Some(path))
            .cloned()
    };
    let spans = receiver.wait_for("the server spans of both requests", |spans| {
        server_span(spans, "/slow-body").is_some()
            && server_span(spans, "/trap-after-response").is_some()
    });
    let slow = server_span(&spans, "/slow-body").unwrap();
    assert!(
        slow.duration >= Duration::from_millis(400),
        "the span ended before the body did: {slow:#?}"
    );
    assert_ne!(slow.status, ERROR, "{slow:#?}");
    let trapped = server_span(&spans, "/trap-after-response").unwrap();
    assert_eq!(trapped.status, ERROR, "{trapped:#?}");
}
