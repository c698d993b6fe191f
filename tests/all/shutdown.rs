//! SIGTERM drains a job: it stops accepting, lets requests in flight finish
//! within the shutdown grace period and exits 0; the end of the grace period
//! or a second signal stops it at once with status 3.

use amimono_tests::{Host, get, temp_app};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn edge(limits: &str) -> (tempfile::TempDir, Host) {
    let app = temp_app(&format!(
        "[app]\nname = \"edge\"\n\n[limits]\n{limits}\n\n\
         [components.edge]\nbinding = \"http\"\nsource = \"{{wasm:fixture_edge_http}}\"\n\n\
         [components.probe]\nbinding = \"rpc\"\nsource = \"{{wasm:fixture_trap_http}}\"\n\n\
         [jobs.one]\ncomponents = [\"edge\", \"probe\"]\n"
    ));
    let host = Host::start(app.path(), &[("AMIMONO_JOB", "one")], &["edge"]);
    (app, host)
}

#[test]
fn sigterm_lets_requests_in_flight_finish_then_exits_0() {
    let (_app, mut host) = edge("");
    let url = host.url("edge").to_string();
    let in_flight: Vec<_> = (0..3)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || get(&format!("{url}/sleep?ms=1500")))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    host.signal(libc::SIGTERM);
    // New connections are refused once the listener closes.
    let address = url.trim_start_matches("http://").to_string();
    let mut refused = false;
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(20));
        if TcpStream::connect(&address).is_err() {
            refused = true;
            break;
        }
    }
    assert!(refused, "still accepting after SIGTERM");
    for request in in_flight {
        let reply = request.join().unwrap();
        assert_eq!((reply.status, reply.body.as_str()), (200, "slept\n"));
    }
    let status = host
        .wait_exit(Duration::from_secs(10))
        .expect("did not exit");
    assert_eq!(status.code(), Some(0), "{}", host.stderr());
    assert!(host.stderr().contains("every request in flight finished"));
}

#[test]
fn an_idle_job_stops_at_once() {
    let (_app, mut host) = edge("");
    let started = Instant::now();
    host.signal(libc::SIGTERM);
    let status = host
        .wait_exit(Duration::from_secs(10))
        .expect("did not exit");
    let took = started.elapsed();
    assert_eq!(status.code(), Some(0), "{}", host.stderr());
    // Measured here: ~5 ms (it was 1.2–2 s). The bound only catches a job
    // that waits for something on the way out; it is not a speed claim.
    assert!(took < Duration::from_secs(1), "took {took:?}");
}

#[test]
fn the_end_of_the_grace_period_stops_the_job_with_status_3() {
    let (_app, mut host) = edge("shutdown_grace_ms = 300");
    let url = host.url("edge").to_string();
    let stuck = std::thread::spawn(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        agent.get(&format!("{url}/sleep?ms=60000")).call().is_err()
    });
    std::thread::sleep(Duration::from_millis(500));
    host.signal(libc::SIGTERM);
    let status = host
        .wait_exit(Duration::from_secs(10))
        .expect("did not exit");
    assert_eq!(status.code(), Some(3), "{}", host.stderr());
    assert!(
        stuck.join().unwrap(),
        "the stuck request should have failed"
    );
    assert!(
        host.stderr()
            .contains("stopped before every request in flight finished")
    );
}

#[test]
fn a_second_signal_stops_the_job_at_once() {
    let (_app, mut host) = edge("shutdown_grace_ms = 60000");
    let url = host.url("edge").to_string();
    let _stuck = std::thread::spawn(move || get(&format!("{url}/sleep?ms=60000")));
    std::thread::sleep(Duration::from_millis(500));
    host.signal(libc::SIGTERM);
    assert!(host.wait_for_log("draining", Duration::from_secs(5)));
    assert!(
        host.wait_exit(Duration::from_millis(500)).is_none(),
        "it should be draining"
    );
    host.signal(libc::SIGINT);
    let status = host
        .wait_exit(Duration::from_secs(10))
        .expect("did not exit");
    assert_eq!(status.code(), Some(3), "{}", host.stderr());
}
