//! The fault run: a callee job stopped (SIGSTOP) or killed (SIGKILL) under
//! load. Callers fail within their deadline with the documented error, stop
//! calling a callee that keeps failing (its circuit opens, logged) and probe
//! it again, and recover without a restart once the callee is back.

use amimono_tests::{Host, get, hello_bindings, hello_manifest, request_id, signal_pid, temp_app};
use std::path::Path;
use std::time::{Duration, Instant};

/// The hello app with a 500 ms deadline on calls to the greeter.
fn app() -> tempfile::TempDir {
    temp_app(&hello_manifest().replace(
        "[components.greeter]\n",
        "[components.greeter]\ncall_timeout_ms = 500\nidempotent = [\"greet-in\"]\n",
    ))
}

fn start(app: &Path, job: &str, bindings: &Path, http: &[&str]) -> Host {
    let host = Host::start(
        app,
        &[
            ("AMIMONO_JOB", job),
            ("AMIMONO_BINDINGS", bindings.to_str().unwrap()),
        ],
        http,
    );
    host.wait_running();
    host
}

/// Waits until process `pid` is in `state` (`T`: stopped) per /proc.
fn wait_for_state(pid: u32, state: char) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let now = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next());
        if now == Some(state) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("process {pid} did not reach state {state}");
}

/// GETs `url` until it answers 200, for at most `within`; how long it took.
fn until_ok(url: &str, within: Duration) -> Duration {
    let started = Instant::now();
    while started.elapsed() < within {
        if get(url).status == 200 {
            return started.elapsed();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{url} did not recover within {within:?}");
}

#[test]
fn a_stopped_callee_fails_calls_within_their_deadline_opens_its_circuit_and_recovers() {
    let app = app();
    let dir = tempfile::tempdir().unwrap();
    let (bindings, web_port, _) = hello_bindings(dir.path());
    let backend = start(app.path(), "backend", &bindings, &[]);
    let web = start(app.path(), "web", &bindings, &["frontend"]);
    let url = format!("http://127.0.0.1:{web_port}/hello/world");
    assert_eq!(get(&url).status, 200);

    signal_pid(backend.pid(), libc::SIGSTOP);
    wait_for_state(backend.pid(), 'T');
    let mut ids = Vec::new();
    for _ in 0..8 {
        let started = Instant::now();
        let reply = get(&url);
        // Failed within the call's deadline (500 ms), give or take a loaded
        // machine — never the 30 s a hung callee would otherwise cost.
        assert_eq!(reply.status, 500, "{reply:?}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        ids.push(request_id(&reply.body));
    }
    let first = web.log_record(&format!("request_id={}", ids[0]));
    assert!(
        first.contains(
            "no answer within the deadline of 500 ms; the callee may or may not have run"
        ),
        "{first}"
    );
    // After five failures in a row, calls fail at once without being sent.
    assert!(
        web.wait_for_log("circuit open", Duration::from_secs(5)),
        "{}",
        web.stderr()
    );
    let last = web.log_record(&format!("request_id={}", ids[7]));
    assert!(last.contains("its circuit is open"), "{last}");

    // Back: a probe gets through and the circuit closes; the web job was
    // never restarted.
    signal_pid(backend.pid(), libc::SIGCONT);
    until_ok(&url, Duration::from_secs(30));
    assert!(web.wait_for_log("circuit closed", Duration::from_secs(5)));
}

#[test]
fn a_killed_callee_fails_calls_and_a_restarted_one_is_used_again() {
    let app = app();
    let dir = tempfile::tempdir().unwrap();
    let (bindings, web_port, _) = hello_bindings(dir.path());
    let mut backend = start(app.path(), "backend", &bindings, &[]);
    let web = start(app.path(), "web", &bindings, &["frontend"]);
    let url = format!("http://127.0.0.1:{web_port}/hello/world");
    // Under load: requests keep coming while the backend dies.
    let load = {
        let url = url.clone();
        std::thread::spawn(move || {
            let mut statuses = Vec::new();
            for _ in 0..40 {
                statuses.push(get(&url).status);
                std::thread::sleep(Duration::from_millis(25));
            }
            statuses
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    signal_pid(backend.pid(), libc::SIGKILL);
    backend
        .wait_exit(Duration::from_secs(5))
        .expect("the backend did not die");
    let statuses = load.join().unwrap();
    // Every request got an answer: 200 before the kill, 500 after.
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 500),
        "{statuses:?}"
    );
    assert!(statuses.contains(&500), "{statuses:?}");
    let reply = get(&url);
    assert_eq!(reply.status, 500);
    let record = web.log_record(&format!("request_id={}", request_id(&reply.body)));
    assert!(
        record.contains("remote call to greeter.greet-in"),
        "{record}"
    );
    // A new backend on the same address: the web job uses it again.
    let _backend = start(app.path(), "backend", &bindings, &[]);
    until_ok(&url, Duration::from_secs(30));
}
