//! Replicas: several `amimono run` processes of one job, one bindings file
//! listing each replica's address, and a caller spreading its calls over
//! them per call; a killed replica is ejected, probed again later and
//! re-admitted once it is back, and no idempotent call is lost meanwhile.
//! `amimono up` starts every replica.

use amimono_tests::{
    Host, child_pids, env_of, free_port, get, hello_bindings, hello_manifest,
    replicated_hello_bindings, replicated_hello_manifest, run_amimono, signal_pid, temp_app, texts,
};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What a backend replica logs for each call it served (at debug level).
const SERVED: &str = "served a remote call";

/// Logs of a backend replica: its served calls.
const BACKEND_LOG: &str = "info,amimono::serve::rpc=debug";

/// Starts replica `replica` of job `job` and waits until it runs.
fn start(app: &Path, job: &str, replica: u32, bindings: &Path, log: &str) -> Host {
    let replica = replica.to_string();
    let host = Host::start(
        app,
        &[
            ("AMIMONO_JOB", job),
            ("AMIMONO_REPLICA", &replica),
            ("AMIMONO_BINDINGS", bindings.to_str().unwrap()),
            ("RUST_LOG", log),
        ],
        if job == "web" { &["frontend"] } else { &[] },
    );
    host.wait_running();
    host
}

/// Waits until the replicas have logged `total` served calls together (each
/// logs a call before its answer leaves, but the harness reads their
/// stderr asynchronously); each one's count.
fn served(replicas: &[&Host], total: usize) -> Vec<usize> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let counts: Vec<usize> = replicas.iter().map(|h| h.count_lines(&[SERVED])).collect();
        if counts.iter().sum::<usize>() >= total || Instant::now() > deadline {
            return counts;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn two_replicas_of_the_backend_share_the_calls_of_one_web_process() {
    let app = temp_app(&replicated_hello_manifest(2));
    let dir = tempfile::tempdir().unwrap();
    let (bindings, web_port, _) = replicated_hello_bindings(dir.path(), 2);
    let zero = start(app.path(), "backend", 0, &bindings, BACKEND_LOG);
    let one = start(app.path(), "backend", 1, &bindings, BACKEND_LOG);
    let _web = start(app.path(), "web", 0, &bindings, "info");
    const REQUESTS: usize = 20;
    for i in 0..REQUESTS {
        let reply = get(&format!("http://127.0.0.1:{web_port}/hello/n{i}"));
        assert_eq!(reply.status, 200, "{reply:?}");
        assert!(reply.body.starts_with(&format!("Hello, n{i}! (visit ")));
    }
    // One call to the greeter per request, spread per call (not per
    // keep-alive connection): both replicas served some.
    let counts = served(&[&zero, &one], REQUESTS);
    println!("calls served by replica 0 and 1 of {REQUESTS}: {counts:?}");
    assert_eq!(counts.iter().sum::<usize>(), REQUESTS, "{counts:?}");
    assert!(counts.iter().all(|c| *c > 0), "{counts:?}");
}

#[test]
fn a_killed_replica_loses_no_idempotent_call_is_ejected_and_readmitted_when_back() {
    let app = temp_app(&replicated_hello_manifest(2));
    let dir = tempfile::tempdir().unwrap();
    let (bindings, web_port, ports) = replicated_hello_bindings(dir.path(), 2);
    let zero = start(app.path(), "backend", 0, &bindings, BACKEND_LOG);
    let mut one = start(app.path(), "backend", 1, &bindings, BACKEND_LOG);
    let web = start(
        app.path(),
        "web",
        0,
        &bindings,
        "info,amimono::remote=debug",
    );
    let url = format!("http://127.0.0.1:{web_port}/hello/world");
    // Requests keep coming, one after another, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let load = {
        let (stop, sent, url) = (stop.clone(), sent.clone(), url.clone());
        std::thread::spawn(move || {
            let mut statuses = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                statuses.push(get(&url).status);
                sent.fetch_add(1, Ordering::SeqCst);
            }
            statuses
        })
    };
    let wait_for = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done() {
            assert!(
                Instant::now() < deadline,
                "{what}; web log:\n{}",
                web.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_for("both replicas serve", &|| {
        zero.count_lines(&[SERVED]) > 0 && one.count_lines(&[SERVED]) > 0
    });
    signal_pid(one.pid(), libc::SIGKILL);
    one.wait_exit(Duration::from_secs(10))
        .expect("replica 1 did not die");
    let killed = format!("address=http://127.0.0.1:{}", ports[1]);
    // Ejected, and probed again later (it is still down: ejected again).
    wait_for("replica 1 ejected", &|| {
        web.count_lines(&["circuit open", &killed]) > 0
    });
    wait_for("replica 1 probed", &|| {
        web.count_lines(&["circuit half-open", &killed]) > 0
    });
    // Back on its address: a probe gets through, it is re-admitted and
    // serves calls again.
    let back = start(app.path(), "backend", 1, &bindings, BACKEND_LOG);
    wait_for("replica 1 re-admitted", &|| {
        web.count_lines(&["circuit closed", "re-admitted", &killed]) > 0
    });
    wait_for("replica 1 serves again", &|| {
        back.count_lines(&[SERVED]) > 0
    });
    stop.store(true, Ordering::SeqCst);
    let statuses = load.join().unwrap();
    println!(
        "{} requests while replica 1 was killed and restarted; retried on another address: {} (never sent), {} (idempotent)",
        statuses.len(),
        web.count_lines(&["retrying remote call on another address"]),
        web.count_lines(&["retrying idempotent remote call"]),
    );
    assert!(
        statuses.iter().all(|s| *s == 200),
        "{statuses:?}; web log:\n{}",
        web.stderr()
    );
    // The calls that met the dead replica went to replica 0 instead.
    let from_killed = format!("from=http://127.0.0.1:{}", ports[1]);
    assert!(
        web.count_lines(&["retrying remote call on another address", &from_killed]) > 0,
        "{}",
        web.stderr()
    );
}

#[test]
fn a_replica_without_an_entry_in_a_list_is_refused_naming_the_lists() {
    let app = temp_app(&replicated_hello_manifest(2));
    let dir = tempfile::tempdir().unwrap();
    let (bindings, _, _) = replicated_hello_bindings(dir.path(), 2);
    let run = |replica: &str, bindings: &Path| {
        let out = run_amimono(
            &["run", app.path().to_str().unwrap()],
            &[
                ("AMIMONO_JOB", "backend"),
                ("AMIMONO_REPLICA", replica),
                ("AMIMONO_BINDINGS", bindings.to_str().unwrap()),
            ],
        );
        let (_, err) = texts(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        err
    };
    let err = run("2", &bindings);
    assert!(
        err.contains("has no address for replica 2 of job `backend`"),
        "{err}"
    );
    assert!(
        err.contains("bindings.toml:7:12: `internal` of `greeter` lists 2 entries (replicas 0–1), none for replica 2"),
        "{err}"
    );
    assert!(
        err.contains("bindings.toml:11:12: `internal` of `phrasebook` lists 2 entries"),
        "{err}"
    );
    // Single addresses serve every replica, but the job has only two.
    let (single, _, _) = hello_bindings(dir.path());
    let err = run("2", &single);
    assert!(
        err.contains("job `backend` has replicas = 2 (replicas 0–1): there is no replica 2"),
        "{err}"
    );
}

#[test]
fn an_external_address_by_name_is_resolved_and_called() {
    // `localhost` may resolve to ::1 too, where nothing listens: a refused
    // connection goes to the other address, and every call succeeds.
    let app = temp_app(&hello_manifest());
    let dir = tempfile::tempdir().unwrap();
    let (web, backend) = (free_port(), free_port());
    let bindings = dir.path().join("bindings.toml");
    std::fs::write(
        &bindings,
        format!(
            "[components.frontend]\ntype = \"http\"\ninternal = \"127.0.0.1:{web}\"\n\n\
             [components.greeter]\ntype = \"rpc\"\ninternal = \"127.0.0.1:{backend}\"\nexternal = \"http://localhost:{backend}\"\n\n\
             [components.phrasebook]\ntype = \"rpc\"\ninternal = \"127.0.0.1:{backend}\"\nexternal = \"http://localhost:{backend}\"\n"
        ),
    )
    .unwrap();
    let _backend = start(app.path(), "backend", 0, &bindings, "info");
    let web_host = start(app.path(), "web", 0, &bindings, "info");
    for i in 0..6 {
        let reply = get(&format!("http://127.0.0.1:{web}/hello/n{i}"));
        assert_eq!(reply.status, 200, "{reply:?}\n{}", web_host.stderr());
    }
    assert!(
        web_host.wait_for_line(
            &[
                "the callee's addresses changed",
                &format!("http://localhost:{backend} (127.0.0.1:{backend})")
            ],
            Duration::from_secs(5)
        ),
        "{}",
        web_host.stderr()
    );
}

#[test]
fn up_starts_every_replica_and_the_frontend_answers() {
    let app = temp_app(&replicated_hello_manifest(2));
    let mut up = Host::start_up(
        app.path(),
        &[],
        &[],
        &[],
        &["frontend", "admin web", "admin backend", "admin backend#1"],
    );
    for i in 0..6 {
        let reply = get(&format!("{}/hello/n{i}", up.url("frontend")));
        assert_eq!(reply.status, 200, "{reply:?}");
    }
    for admin in ["admin web", "admin backend", "admin backend#1"] {
        let ready = get(&format!("{}/readyz", up.url(admin)));
        assert_eq!(
            (ready.status, ready.body.as_str()),
            (200, "ready\n"),
            "{admin}"
        );
    }
    assert_ne!(up.url("admin backend"), up.url("admin backend#1"));
    // Three processes: the web job and two replicas of the backend.
    let mut jobs: Vec<(String, String)> = child_pids(up.pid())
        .into_iter()
        .filter_map(|pid| Some((env_of(pid, "AMIMONO_JOB")?, env_of(pid, "AMIMONO_REPLICA")?)))
        .collect();
    jobs.sort();
    assert_eq!(
        jobs,
        [
            ("backend".to_string(), "0".to_string()),
            ("backend".to_string(), "1".to_string()),
            ("web".to_string(), "0".to_string()),
        ]
    );
    for prefix in ["[backend#0] ", "[backend#1] ", "[web] "] {
        assert!(
            up.wait_for_log(prefix, Duration::from_secs(10)),
            "{prefix}: {}",
            up.stderr()
        );
    }
    // A replica that dies stops `up`, which names it.
    let replica_one = child_pids(up.pid())
        .into_iter()
        .find(|pid| env_of(*pid, "AMIMONO_REPLICA").as_deref() == Some("1"))
        .unwrap();
    signal_pid(replica_one, libc::SIGKILL);
    let status = up
        .wait_exit(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("up did not exit; its log:\n{}", up.stderr()));
    assert_eq!(status.code(), Some(1));
    assert!(
        up.stderr()
            .contains("job `backend#1` was killed by signal 9; its last log lines:"),
        "{}",
        up.stderr()
    );
}
