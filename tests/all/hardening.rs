//! What a slow, stalled, greedy or vanishing client — or a guest that waits,
//! spins or traps late — can do to a job: each is bounded, and the job keeps
//! serving everyone else. Every test here failed before the serving core was
//! hardened (issue 9).

use amimono_tests::{Host, get, request, request_id, rpc_call, temp_app};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// An app with the edge fixture as HTTP component `edge` (and `other`, a
/// second HTTP component of the same job), `[limits]` given by `limits`.
fn edge(limits: &str) -> (tempfile::TempDir, Host) {
    let app = temp_app(&format!(
        "[app]\nname = \"edge\"\n\n[limits]\n{limits}\n\n\
         [components.edge]\nbinding = \"http\"\nsource = \"{{wasm:fixture_edge_http}}\"\n\n\
         [components.edge.links]\n\"fixtures:probe/control\" = \"probe\"\n\n\
         [components.other]\nbinding = \"http\"\nsource = \"{{wasm:fixture_trap_http}}\"\n\n\
         [components.probe]\nbinding = \"rpc\"\nsource = \"{{wasm:fixture_trap_http}}\"\n\n\
         [jobs.one]\ncomponents = [\"edge\", \"other\", \"probe\"]\n"
    ));
    let host = Host::start(app.path(), &[("AMIMONO_JOB", "one")], &["edge", "other"]);
    (app, host)
}

fn address(url: &str) -> String {
    url.trim_start_matches("http://").to_string()
}

/// Opens a connection and sends `head` (a request without its body, or
/// with part of it); the connection stays open.
fn send(url: &str, head: &str) -> TcpStream {
    let mut stream = TcpStream::connect(address(url)).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    stream
}

/// Reads what the server sends until it closes or `within` passes; the
/// bytes, and whether it closed.
fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (Vec<u8>, bool) {
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buffer = [0u8; 65536];
    while started.elapsed() < within {
        match stream.read(&mut buffer) {
            Ok(0) => return (received, true),
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return (received, true),
        }
    }
    (received, false)
}

#[test]
fn a_guest_waiting_inside_the_host_is_stopped_at_the_request_timeout() {
    let (_app, host) = edge("request_timeout_ms = 500");
    let started = Instant::now();
    let reply = get(&format!("{}/sleep?ms=60000", host.url("edge")));
    assert_eq!(reply.status, 504, "{reply:?}");
    request_id(&reply.body);
    // Well before the guest's 60 s (the bound is loose: loaded machine).
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert!(host.wait_for_log("request_timeout_ms", Duration::from_secs(5)));
    assert_eq!(get(&format!("{}/", host.url("edge"))).status, 200);
}

#[test]
fn a_client_that_goes_away_frees_its_instance() {
    // One instance: while a sleeper holds it, nothing else of `edge` runs.
    let (_app, host) = edge("max_instances = 1\nqueue_timeout_ms = 20000");
    let url = host.url("edge");
    let mut sleeper = send(
        url,
        &format!(
            "GET /sleep?ms=120000 HTTP/1.1\r\nHost: {}\r\n\r\n",
            address(url)
        ),
    );
    // Its request is in the guest once the instance is taken.
    std::thread::sleep(Duration::from_millis(500));
    let _ = sleeper.flush();
    drop(sleeper);
    // The disconnect cancels the sleeper: the next request gets the instance
    // long before the sleep (120 s) or the queue timeout (20 s) ends.
    let started = Instant::now();
    let reply = get(&format!("{url}/"));
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn one_components_load_cannot_starve_another_and_waits_are_bounded() {
    let (_app, host) = edge("max_instances = 2\nqueue_timeout_ms = 300\nmax_queued = 4");
    let url = host.url("edge").to_string();
    // Two sleepers hold both instances of `edge`.
    let sleepers: Vec<_> = (0..2)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || get(&format!("{url}/sleep?ms=4000")))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(800));
    // A third request to `edge` waits 300 ms at most, then 503 + Retry-After.
    let reply = request("GET", &format!("{url}/"), &[], &[]);
    assert_eq!(reply.status, 503, "{reply:?}");
    assert_eq!(reply.header("retry-after"), Some("1"), "{reply:?}");
    request_id(&reply.body);
    // The other component of the same job answers meanwhile.
    let other = get(&format!("{}/", host.url("other")));
    assert_eq!((other.status, other.body.as_str()), (200, "ok\n"));
    for sleeper in sleepers {
        assert_eq!(sleeper.join().unwrap().status, 200);
    }
}

#[test]
fn slow_uploads_hold_no_instance_and_time_out() {
    let (_app, host) = edge("max_instances = 4\nbody_timeout_ms = 1500");
    let url = host.url("edge").to_string();
    // 100 clients announce 1000 bytes and send 1: no instance is taken for
    // them, so requests keep being answered.
    let head = format!(
        "POST /echo-length HTTP/1.1\r\nHost: {}\r\nContent-Length: 1000\r\n\r\nx",
        address(&url)
    );
    let mut stalled: Vec<TcpStream> = (0..100).map(|_| send(&url, &head)).collect();
    std::thread::sleep(Duration::from_millis(200));
    for _ in 0..5 {
        assert_eq!(get(&format!("{url}/")).status, 200);
    }
    // Each of them gets 408 once the body timeout passes.
    let (answer, _) = read_until_closed(&mut stalled[0], Duration::from_secs(10));
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    // A body trickling in at a byte per 200 ms is cut off the same way.
    let mut trickle = send(&url, &head);
    let started = Instant::now();
    let mut cut_off = false;
    while started.elapsed() < Duration::from_secs(10) {
        if trickle.write_all(b"y").is_err() {
            cut_off = true;
            break;
        }
        let (answer, closed) = read_until_closed(&mut trickle, Duration::from_millis(200));
        if closed || !answer.is_empty() {
            cut_off = true;
            break;
        }
    }
    assert!(cut_off, "still open after {:?}", started.elapsed());
    // A complete upload is read and handed to the guest.
    let reply = request("POST", &format!("{url}/echo-length"), &[], &[7u8; 5000]);
    assert_eq!((reply.status, reply.body.as_str()), (200, "5000\n"));
}

#[test]
fn a_client_that_never_reads_its_response_gives_its_instance_back() {
    let (_app, host) = edge(
        "max_instances = 1\nqueue_timeout_ms = 20000\nsend_timeout_ms = 500\nrequest_timeout_ms = 2000",
    );
    let url = host.url("edge").to_string();
    // 64 MiB that the client never reads.
    let mut stuck = send(
        &url,
        &format!(
            "GET /big?mib=64 HTTP/1.1\r\nHost: {}\r\n\r\n",
            address(&url)
        ),
    );
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let reply = get(&format!("{url}/"));
    assert_eq!(reply.status, 200, "{reply:?}");
    // Freed by the request deadline (2 s), well before the queue timeout.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    // The stuck connection is closed by the send timeout.
    let mut closed = false;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buffer = vec![0u8; 1 << 20];
    stuck
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    while Instant::now() < deadline {
        match stuck.read(&mut buffer) {
            Ok(0) | Err(_) => {
                closed = true;
                break;
            }
            Ok(_) => {}
        }
    }
    assert!(closed, "the server kept the stalled connection open");
}

#[test]
fn a_trap_after_the_response_was_set_is_logged_and_breaks_the_body() {
    let (_app, host) = edge("");
    let url = host.url("edge");
    let mut stream = send(
        url,
        &format!(
            "GET /trap-after-response HTTP/1.1\r\nHost: {}\r\n\r\n",
            address(url)
        ),
    );
    let (answer, closed) = read_until_closed(&mut stream, Duration::from_secs(10));
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(closed, "{answer}");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("partial"), "{answer}");
    // Chunked, and never terminated: the client can tell it is broken.
    assert!(answer.contains("transfer-encoding: chunked"), "{answer}");
    assert!(!answer.ends_with("0\r\n\r\n"), "{answer:?}");
    let record = host.log_record("the component trapped while handling a request");
    assert!(record.contains("component=edge"), "{record}");
}

#[test]
fn hop_by_hop_headers_never_reach_the_guest_or_leave_it() {
    let (_app, host) = edge("");
    let reply = request(
        "GET",
        &format!("{}/headers", host.url("edge")),
        &[
            ("connection", "x-secret-hop"),
            ("x-secret-hop", "1"),
            ("te", "trailers"),
            ("x-visible", "1"),
        ],
        &[],
    );
    assert_eq!(reply.status, 200, "{reply:?}");
    let seen: Vec<&str> = reply.body.lines().collect();
    assert!(seen.contains(&"x-visible"), "{seen:?}");
    for hidden in ["x-secret-hop", "te", "connection"] {
        assert!(!seen.contains(&hidden), "the guest saw {hidden}: {seen:?}");
    }
    assert_eq!(reply.header("x-ok"), Some("1"), "{reply:?}");
    assert_eq!(reply.header("te"), None, "{reply:?}");
    assert_eq!(reply.header("trailer"), None, "{reply:?}");
}

#[test]
fn bodies_are_held_against_the_jobs_memory_budget() {
    // A 40 MiB budget (guest memories included) and 15 MiB bodies whose
    // last byte never comes: the budget, not the machine, runs out.
    let (_app, host) = edge("memory_budget_mib = 40\nmemory_mib = 8\nbody_timeout_ms = 20000");
    let url = host.url("edge").to_string();
    let head = format!(
        "POST /echo-length HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\r\n",
        address(&url),
        15 << 20
    );
    let mut held = Vec::new();
    let mut refused = None;
    for _ in 0..4 {
        let mut stream = send(&url, &head);
        // A refused body is not read: don't block on writing it.
        stream
            .set_write_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let _ = stream.write_all(&vec![b'z'; (15 << 20) - 1]);
        let (answer, _) = read_until_closed(&mut stream, Duration::from_millis(500));
        if !answer.is_empty() {
            refused = Some(String::from_utf8_lossy(&answer).into_owned());
            break;
        }
        held.push(stream);
    }
    let refused = refused.expect("every body was accepted into memory");
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(
        !held.is_empty(),
        "not even one body fit; host log:\n{}",
        host.stderr()
    );
    drop(held);
    // Given back: a normal upload is read again.
    std::thread::sleep(Duration::from_millis(500));
    let reply = request("POST", &format!("{url}/echo-length"), &[], &[1u8; 1000]);
    assert_eq!((reply.status, reply.body.as_str()), (200, "1000\n"));
}

#[test]
fn a_memory_budget_larger_than_the_machine_is_refused_at_start() {
    let app = temp_app(
        "[app]\nname = \"edge\"\n\n[limits]\nmemory_budget_mib = 1000000000\n\n\
         [components.edge]\nbinding = \"http\"\nsource = \"{wasm:fixture_edge_http}\"\n\n\
         [jobs.one]\ncomponents = [\"edge\"]\n",
    );
    let out = amimono_tests::run_amimono(
        &["run", app.path().to_str().unwrap()],
        &[("AMIMONO_JOB", "one")],
    );
    let (_, err) = amimono_tests::texts(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("memory_budget_mib = 1000000000 does not fit this machine"),
        "{err}"
    );
}

/// The probe (rpc, job `one`, `call_timeout_ms = 300`) called from job
/// `web`; the backend alone is started.
fn probe_backend() -> amimono_tests::RpcBackend {
    amimono_tests::RpcBackend::start(
        "[app]\nname = \"probe\"\n\n[components.probe]\nbinding = \"rpc\"\ncall_timeout_ms = 300\nsource = \"{wasm:fixture_trap_http}\"\n\n\
         [components.edge]\nbinding = \"http\"\nsource = \"{wasm:fixture_edge_http}\"\n\n\
         [jobs.one]\ncomponents = [\"probe\"]\n\n[jobs.web]\ncomponents = [\"edge\"]\n",
        "one",
    )
}

#[test]
fn a_callee_caps_the_deadline_a_caller_asks_for() {
    let backend = probe_backend();
    let (host, url, revision) = (&backend.host, &backend.url, &backend.revision);
    let started = Instant::now();
    let (status, _, body) = rpc_call(
        url,
        "probe",
        revision,
        "fixtures:probe/control@0.1.0#spin",
        Some("18446744073709551615"),
        &[0x90, 0x4e],
    );
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 504, "{body}");
    assert!(body.contains("within its deadline of 300 ms"), "{body}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(host.wait_for_log(
        "remote call stopped at its deadline",
        Duration::from_secs(5)
    ));
}

#[test]
fn a_huge_declared_body_is_refused_before_it_is_read() {
    let backend = probe_backend();
    let (url, revision) = (&backend.url, &backend.revision);
    let head = |auth: &str| {
        format!(
            "POST /amimono/v1/call/probe HTTP/1.1\r\nHost: x\r\namimono-revision: {revision}\r\n\
             amimono-function: fixtures:probe/control@0.1.0#whoami\r\n{auth}\
             Content-Length: 1000000000000\r\n\r\n"
        )
    };
    // Unauthenticated: refused at once, nothing read.
    let mut stream = send(url, &head(""));
    let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(5));
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 401"));
    // Authenticated (signed over an empty body): 413 at once.
    let auth = amimono_tests::call_auth(
        amimono_tests::TEST_CLUSTER_KEY,
        revision,
        "probe",
        "fixtures:probe/control@0.1.0#whoami",
        "",
        "",
        b"",
        amimono_tests::now_ms(),
    );
    let mut stream = send(url, &head(&format!("amimono-auth: {auth}\r\n")));
    let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(5));
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}
