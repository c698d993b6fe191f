//! The admin listener of `amimono run`: `/healthz` answers while the process
//! serves, `/readyz` turns 200 once the jobs a job calls accept connections
//! and 503 the moment SIGTERM starts the drain, while requests in flight
//! still finish. Real processes, real HTTP on loopback.

use amimono_tests::{Host, app_jobs, free_port, get, hello_app, request, temp_app, write_bindings};
use std::time::{Duration, Instant};

/// The edge app (an HTTP component that can sleep, and the probe it
/// imports), one job.
fn edge(env: &[(&str, &str)]) -> (tempfile::TempDir, Host) {
    let app = temp_app(
        "[app]\nname = \"edge\"\n\n\
         [components.edge]\nbinding = \"http\"\nsource = \"{wasm:fixture_edge_http}\"\n\n\
         [components.probe]\nbinding = \"rpc\"\nsource = \"{wasm:fixture_trap_http}\"\n\n\
         [jobs.one]\ncomponents = [\"edge\", \"probe\"]\n",
    );
    let mut all = vec![("AMIMONO_JOB", "one")];
    all.extend_from_slice(env);
    let host = Host::start(app.path(), &all, &["edge", "admin"]);
    (app, host)
}

/// Polls `url` every 20 ms until it answers `status`, for at most `bound`;
/// the last reply's status and body.
fn wait_for_status(url: &str, status: u16, bound: Duration) -> (u16, String) {
    let until = Instant::now() + bound;
    loop {
        let reply = get(url);
        if reply.status == status || Instant::now() >= until {
            return (reply.status, reply.body);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn readiness_turns_503_at_sigterm_while_a_request_in_flight_completes_with_200() {
    let (_app, mut host) = edge(&[]);
    let url = host.url("edge").to_string();
    let admin = host.url("admin").to_string();
    // A job that calls no other job is ready as soon as it serves.
    assert_eq!(
        wait_for_status(&format!("{admin}/readyz"), 200, Duration::from_secs(10)),
        (200, "ready\n".to_string())
    );
    let alive = get(&format!("{admin}/healthz"));
    assert_eq!((alive.status, alive.body.as_str()), (200, "ok\n"));
    // Metrics are served there too; nothing else, and nothing but GET and HEAD.
    assert_eq!(get(&format!("{admin}/metrics")).status, 200);
    assert_eq!(get(&format!("{admin}/debug")).status, 404);
    let post = request("POST", &format!("{admin}/readyz"), &[], b"");
    assert_eq!(post.status, 405, "{post:?}");
    assert_eq!(post.header("allow"), Some("GET, HEAD"));

    let slow = {
        let url = url.clone();
        std::thread::spawn(move || get(&format!("{url}/sleep?ms=2500")))
    };
    std::thread::sleep(Duration::from_millis(500));
    host.signal(libc::SIGTERM);
    // Not ready first, while the request in flight still runs.
    assert_eq!(
        wait_for_status(&format!("{admin}/readyz"), 503, Duration::from_secs(2)),
        (503, "not ready: draining\n".to_string()),
        "{}",
        host.stderr()
    );
    assert_eq!(get(&format!("{admin}/healthz")).status, 200);
    let reply = slow.join().unwrap();
    assert_eq!((reply.status, reply.body.as_str()), (200, "slept\n"));
    let status = host
        .wait_exit(Duration::from_secs(10))
        .expect("did not exit");
    assert_eq!(status.code(), Some(0), "{}", host.stderr());
}

#[test]
fn the_admin_address_comes_from_the_flag_or_the_bindings_file() {
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let (_app, host) = edge(&[("AMIMONO_ADMIN", address.as_str())]);
    assert_eq!(host.url("admin"), format!("http://{address}"));
    drop(host);

    let dir = tempfile::tempdir().unwrap();
    let bindings = dir.path().join("bindings.toml");
    let jobs = app_jobs(&hello_app(), None);
    write_bindings(&bindings, &jobs);
    let admin_port = free_port();
    let mut text = std::fs::read_to_string(&bindings).unwrap();
    text.push_str(&format!("[jobs.web]\nadmin = \"127.0.0.1:{admin_port}\"\n"));
    std::fs::write(&bindings, text).unwrap();
    let web = Host::start(
        &hello_app(),
        &[
            ("AMIMONO_JOB", "web"),
            ("AMIMONO_BINDINGS", bindings.to_str().unwrap()),
        ],
        &["frontend", "admin"],
    );
    assert_eq!(web.url("admin"), format!("http://127.0.0.1:{admin_port}"));
}

#[test]
fn a_job_turns_ready_once_the_jobs_it_calls_accept_connections() {
    let dir = tempfile::tempdir().unwrap();
    let bindings = dir.path().join("bindings.toml");
    write_bindings(&bindings, &app_jobs(&hello_app(), None));
    let bindings = bindings.to_str().unwrap();
    let web = Host::start(
        &hello_app(),
        &[("AMIMONO_JOB", "web"), ("AMIMONO_BINDINGS", bindings)],
        &["frontend", "admin"],
    );
    let readyz = format!("{}/readyz", web.url("admin"));
    // The backend is not running: the web job serves but is not ready.
    for _ in 0..5 {
        let reply = get(&readyz);
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (503, "not ready: starting\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(get(&format!("{}/healthz", web.url("admin"))).status, 200);
    let backend = Host::start(
        &hello_app(),
        &[("AMIMONO_JOB", "backend"), ("AMIMONO_BINDINGS", bindings)],
        &["admin"],
    );
    assert_eq!(
        wait_for_status(&readyz, 200, Duration::from_secs(20)),
        (200, "ready\n".to_string()),
        "{}",
        web.stderr()
    );
    assert_eq!(
        wait_for_status(
            &format!("{}/readyz", backend.url("admin")),
            200,
            Duration::from_secs(10)
        )
        .0,
        200
    );
    let page = get(&format!("{}/hello/world", web.url("frontend")));
    assert!(page.body.starts_with("Hello, world!"), "{page:?}");
}

#[test]
fn a_bindings_file_naming_an_unknown_job_or_a_bad_admin_address_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bindings = dir.path().join("bindings.toml");
    write_bindings(&bindings, &app_jobs(&hello_app(), None));
    let mut text = std::fs::read_to_string(&bindings).unwrap();
    text.push_str("[jobs.nope]\nadmin = \"127.0.0.1:9100\"\n\n[jobs.web]\nadmin = \"localhost\"\n");
    std::fs::write(&bindings, text).unwrap();
    let out = amimono_tests::run_amimono(
        &["run", hello_app().to_str().unwrap()],
        &[
            ("AMIMONO_JOB", "web"),
            ("AMIMONO_BINDINGS", bindings.to_str().unwrap()),
        ],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("has no job `nope`"), "{stderr}");
    assert!(
        stderr.contains("`admin` must be an IP address and port"),
        "{stderr}"
    );
}
