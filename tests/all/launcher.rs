//! `amimono bindings` (stable localhost ports) and `amimono up` (one process
//! per job, supervised).

use amimono_tests::{
    Host, child_pids, env_of, free_port, get, hello_manifest, run_amimono, temp_app, texts,
};
use std::time::Duration;

fn bindings(app: &std::path::Path, base: u16) -> String {
    let out = run_amimono(
        &[
            "bindings",
            app.to_str().unwrap(),
            "--base-port",
            &base.to_string(),
        ],
        &[],
    );
    let (text, err) = texts(&out);
    assert!(out.status.success(), "{err}");
    text
}

#[test]
fn bindings_ports_are_stable_and_checked_free() {
    let app = temp_app(&hello_manifest());
    let base = free_port();
    let first = bindings(app.path(), base);
    assert!(first.contains("[components.frontend]"), "{first}");
    assert!(first.contains("[components.greeter]"), "{first}");
    // greeter and phrasebook (job backend) share one port; frontend has its own.
    let port_of = |text: &str, label: &str| -> String {
        let start = text.find(&format!("[components.{label}]")).unwrap();
        let line = text[start..]
            .lines()
            .find(|l| l.starts_with("internal"))
            .unwrap();
        line.to_string()
    };
    assert_eq!(port_of(&first, "greeter"), port_of(&first, "phrasebook"));
    assert_ne!(port_of(&first, "greeter"), port_of(&first, "frontend"));
    // Each job has an admin listener of its own.
    assert!(
        first.contains("[jobs.web]\nadmin = \"127.0.0.1:"),
        "{first}"
    );
    assert!(
        first.contains("[jobs.backend]\nadmin = \"127.0.0.1:"),
        "{first}"
    );
    assert!(app.path().join(".amimono/ports.json").exists());
    // Again: the same ports.
    assert_eq!(bindings(app.path(), base), first);
    // A persisted port taken by someone else is replaced by a free one.
    let taken: u16 = port_of(&first, "frontend")
        .split(':')
        .next_back()
        .unwrap()
        .trim_end_matches('"')
        .parse()
        .unwrap();
    let _holder = std::net::TcpListener::bind(("127.0.0.1", taken)).unwrap();
    let third = bindings(app.path(), base);
    assert_ne!(port_of(&third, "frontend"), port_of(&first, "frontend"));
}

fn job_of(pid: u32) -> Option<String> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    environ
        .split(|b| *b == 0)
        .find_map(|kv| kv.strip_prefix(b"AMIMONO_JOB="))
        .map(|job| String::from_utf8_lossy(job).into_owned())
}

fn start_up(app: &tempfile::TempDir) -> Host {
    start_up_without(app, &[])
}

fn start_up_without(app: &tempfile::TempDir, unset: &[&str]) -> Host {
    Host::start_up(
        app.path(),
        &[],
        &[],
        unset,
        &["frontend", "admin web", "admin backend"],
    )
}

#[test]
fn up_gives_every_job_one_new_cluster_key() {
    let app = temp_app(&hello_manifest());
    let up = start_up_without(&app, &["AMIMONO_CLUSTER_KEY"]);
    // The split app works: its calls between jobs are authenticated.
    let reply = get(&format!("{}/hello/world", up.url("frontend")));
    assert_eq!(reply.status, 200, "{reply:?}");
    let keys: Vec<String> = child_pids(up.pid())
        .into_iter()
        .filter_map(|pid| env_of(pid, "AMIMONO_CLUSTER_KEY"))
        .collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert_eq!(keys[0], keys[1]);
    assert_eq!(keys[0].len(), 64);
    assert_ne!(keys[0], amimono_tests::TEST_CLUSTER_KEY);
    assert!(
        !up.stderr().contains(&keys[0]),
        "the key must never be logged"
    );
}

#[test]
fn up_runs_one_process_per_job_and_says_which_job_died() {
    let app = temp_app(&hello_manifest());
    let mut up = start_up(&app);
    let reply = get(&format!("{}/hello/world", up.url("frontend")));
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(reply.body.starts_with("Hello, world! (visit "), "{reply:?}");
    // Each job's admin listener, printed with the URLs, from the bindings file.
    for job in ["web", "backend"] {
        let ready = get(&format!("{}/readyz", up.url(&format!("admin {job}"))));
        assert_eq!(
            (ready.status, ready.body.as_str()),
            (200, "ready\n"),
            "{job}"
        );
    }
    let kids = child_pids(up.pid());
    let mut jobs: Vec<String> = kids.iter().filter_map(|pid| job_of(*pid)).collect();
    jobs.sort();
    assert_eq!(jobs, ["backend", "web"]);
    assert!(
        up.wait_for_log("[backend]", Duration::from_secs(5)),
        "{}",
        up.stderr()
    );
    assert!(up.stderr().contains("[web]"), "{}", up.stderr());

    let backend = kids
        .iter()
        .find(|pid| job_of(**pid).as_deref() == Some("backend"))
        .unwrap();
    std::process::Command::new("kill")
        .args(["-9", &backend.to_string()])
        .status()
        .unwrap();
    let status = up
        .wait_exit(Duration::from_secs(15))
        .unwrap_or_else(|| panic!("up did not exit; its log:\n{}", up.stderr()));
    assert_eq!(status.code(), Some(1));
    let err = up.stderr();
    assert!(
        err.contains("job `backend` was killed by signal 9; its last log lines:"),
        "{err}"
    );
    assert!(err.contains("  [backend] "), "{err}");
    assert!(err.contains("stopping the other jobs"), "{err}");
    for pid in kids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .unwrap_or_default()
                    .contains(") Z "),
            "child {pid} still runs"
        );
    }
}

#[test]
fn up_stops_every_job_on_sigterm() {
    let app = temp_app(&hello_manifest());
    let mut up = start_up(&app);
    let kids = child_pids(up.pid());
    assert_eq!(kids.len(), 2);
    std::process::Command::new("kill")
        .args(["-TERM", &up.pid().to_string()])
        .status()
        .unwrap();
    let status = up
        .wait_exit(Duration::from_secs(15))
        .unwrap_or_else(|| panic!("up did not exit; its log:\n{}", up.stderr()));
    assert_eq!(status.code(), Some(0), "{}", up.stderr());
    assert!(up.stderr().contains("stopping every job"));
    for pid in kids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "child {pid} still runs"
        );
    }
}

/// Whether process `pid` has exited (gone, or a zombie nobody reaped).
fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat[stat.rfind(')').unwrap() + 2..].starts_with('Z'),
        Err(_) => true,
    }
}

#[test]
fn the_jobs_of_a_killed_up_stop_too() {
    let app = temp_app(&hello_manifest());
    let up = start_up(&app);
    let jobs = child_pids(up.pid());
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    // SIGKILL: `up` gets no chance to stop its children itself.
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &up.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !jobs.iter().all(|pid| exited(*pid)) {
        assert!(
            std::time::Instant::now() < deadline,
            "the jobs {jobs:?} still run 30 s after `up` was killed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
