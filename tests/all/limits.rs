//! Limits: CPU time and memory per instance, request header count, body
//! size and header-read time. Each over-limit request fails alone; the host
//! keeps serving.

use amimono_tests::{Host, get, post, temp_app};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn probe(limits: &str) -> (tempfile::TempDir, Host) {
    let app = temp_app(&format!(
        "[app]\nname = \"limits\"\n\n[limits]\n{limits}\n\n[components.probe]\nbinding = \"http\"\nsource = \"{{wasm:fixture_trap_http}}\"\n\n[jobs.one]\ncomponents = [\"probe\"]\n"
    ));
    let host = Host::start(app.path(), &[("AMIMONO_JOB", "one")], &["probe"]);
    (app, host)
}

#[test]
fn a_busy_loop_is_stopped_at_the_cpu_limit_and_the_next_request_is_served() {
    let (_app, host) = probe("cpu_ms = 200");
    let url = host.url("probe");
    let started = Instant::now();
    let reply = get(&format!("{url}/spin?ms=10000"));
    let elapsed = started.elapsed();
    assert_eq!(reply.status, 500, "{reply:?}");
    assert!(
        host.wait_for_log("CPU time limit of 200 ms", Duration::from_secs(5)),
        "{}",
        host.stderr()
    );
    // Stopped before the spin's own 10 s were up. How much before depends
    // on the machine's load (the limit counts ticks while the guest runs),
    // so no tighter bound.
    assert!(
        elapsed < Duration::from_secs(10),
        "answered after {elapsed:?}"
    );
    // Under the limit is fine, and the host keeps serving.
    assert_eq!(get(&format!("{url}/spin?ms=20")).status, 200);
    assert_eq!(get(&format!("{url}/")).body, "ok\n");
}

#[test]
fn a_memory_bomb_gets_500_and_the_host_keeps_serving() {
    let (_app, host) = probe("memory_mib = 48");
    let url = host.url("probe");
    let reply = get(&format!("{url}/bomb"));
    assert_eq!(reply.status, 500, "{reply:?}");
    assert!(host.wait_for_log("the component trapped", Duration::from_secs(5)));
    for _ in 0..3 {
        assert_eq!(get(&format!("{url}/")).body, "ok\n");
    }
}

/// Sends a raw request of exactly `count` headers (`Host`, `Connection`
/// and fillers) and an optional `extra` header line; the status line.
fn raw_request(address: &str, count: usize, extra: &str) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    let mut request = format!("POST / HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n{extra}");
    for i in 0..count - 2 {
        request.push_str(&format!("x-filler-{i}: {i}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn more_than_100_headers_get_431() {
    let (_app, host) = probe("");
    let address = host.url("probe").trim_start_matches("http://").to_string();
    // 100 headers (the default limit): served; 101: refused.
    assert_eq!(raw_request(&address, 100, ""), "HTTP/1.1 200 OK");
    assert_eq!(
        raw_request(&address, 101, ""),
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    assert_eq!(get(&format!("{}/", host.url("probe"))).status, 200);
}

#[test]
fn an_oversized_body_gets_413() {
    let (_app, host) = probe("max_body_bytes = 1048576");
    let url = host.url("probe");
    let address = url.trim_start_matches("http://").to_string();
    // Refused from the declared length, before reading the body.
    let status = raw_request(
        &address,
        3,
        &format!("Content-Length: {}\r\n", (1 << 20) + 1),
    );
    assert_eq!(status, "HTTP/1.1 413 Payload Too Large");
    let (status, _, _) = post(&format!("{url}/"), &[], &vec![7u8; 1 << 20]);
    assert_eq!(status, 200);
}

#[test]
fn a_client_sending_headers_one_byte_per_second_is_cut_off_within_10_s() {
    let (_app, host) = probe("");
    let address = host.url("probe").trim_start_matches("http://").to_string();
    let mut stream = TcpStream::connect(&address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let started = Instant::now();
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {address}\r\nX-Slow: {}\r\n\r\n",
        "z".repeat(40)
    );
    let mut closed = false;
    for byte in request.bytes() {
        if stream.write_all(&[byte]).is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 256];
        match stream.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(_) => {
                closed = true;
                break;
            }
            Err(_) => {}
        }
        std::thread::sleep(Duration::from_millis(950));
        if started.elapsed() > Duration::from_secs(12) {
            break;
        }
    }
    assert!(
        closed,
        "the connection was still open after {:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "closed after {:?}",
        started.elapsed()
    );
    assert_eq!(get(&format!("{}/", host.url("probe"))).status, 200);
}

#[test]
fn requests_beyond_the_instance_limit_wait_for_a_free_instance() {
    // Three requests that each hold an instance for SPIN of wall time. One
    // after another they cannot finish before 3 × SPIN; side by side they
    // finish before it, however loaded the machine (the spin counts wall
    // time, so it does not stretch when the requests share the cores).
    const SPIN: Duration = Duration::from_millis(600);
    let spin_three = |url: &str| -> Vec<Duration> {
        let started = Instant::now();
        let requests: Vec<_> = (0..3)
            .map(|_| {
                let url = format!("{url}/spin?ms={}", SPIN.as_millis());
                std::thread::spawn(move || {
                    assert_eq!(get(&url).status, 200);
                    started.elapsed()
                })
            })
            .collect();
        let mut done: Vec<Duration> = requests.into_iter().map(|r| r.join().unwrap()).collect();
        done.sort();
        done
    };
    // One instance at a time: the requests are served one after another.
    let (_app, host) = probe("max_instances = 1");
    let serial = spin_three(host.url("probe"));
    assert!(
        serial[2] >= 3 * SPIN,
        "three {SPIN:?} requests through one instance finished after {serial:?}"
    );
    // The default allows them side by side.
    let (_app, host) = probe("");
    let parallel = spin_three(host.url("probe"));
    assert!(
        parallel[2] < 3 * SPIN,
        "three {SPIN:?} requests with the default limit finished after {parallel:?}"
    );
}
