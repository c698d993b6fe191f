//! Traces exported over OTLP/HTTP to a real receiver
//! ([`amimono_tests::otlp`], which decodes the protobuf bodies). One request to the split hello
//! app must yield one trace whose spans cover frontend, greeter and
//! phrasebook across the two processes, each span's parent the span that
//! caused it.

use crate::metrics::split_hello;
use amimono_tests::get;
use amimono_tests::otlp::{CLIENT, ERROR, INTERNAL, Received, Receiver, SERVER, header, read_head};
use std::io::{BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

/// `amimono call` is one native call and then the process exits: its span
/// is exported before it does (the default batch delay is 5 s, far longer
/// than the call).
#[test]
fn a_call_from_the_command_line_exports_its_span_before_exiting() {
    let receiver = Receiver::start();
    let env = [("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint.as_str())];
    let out = amimono_tests::run_amimono(
        &["call", "examples/hello", "greeter", "greet", "\"world\""],
        &env,
    );
    let (_, stderr) = amimono_tests::texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    // Exported before the exit: already here, no waiting needed.
    let spans = receiver.received();
    let call = spans
        .iter()
        .find(|s| s.kind == INTERNAL && s.component.as_deref() == Some("greeter"))
        .unwrap_or_else(|| panic!("no span of the call: {spans:#?}"));
    assert_eq!(call.name, "greeter.greet", "{call:#?}");
    assert_eq!(call.service, "hello/_local", "{call:#?}");
    assert_ne!(call.status, ERROR, "{call:#?}");
}
