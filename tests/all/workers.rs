//! Workers: started with their job, failed runs restarted with backoff,
//! other exports still callable.

use amimono_tests::{Host, run_amimono, temp_app, texts};
use std::time::Duration;

const WORKER_APP: &str = "[app]\nname = \"work\"\n\n[keyvalue]\nbackend = \"sqlite\"\n\n[components.worker]\nsource = \"{wasm:fixture_worker}\"\nkeyvalue = [\"worker\"]\n\n[jobs.one]\ncomponents = [\"worker\"]\n";

#[test]
fn a_worker_runs_at_start_and_failed_runs_are_restarted_with_backoff() {
    let app = temp_app(WORKER_APP);
    let data = tempfile::tempdir().unwrap();
    let data = data.path().to_str().unwrap().to_string();
    let host = Host::start(
        app.path(),
        &[("AMIMONO_JOB", "one"), ("AMIMONO_DATA_DIR", &data)],
        &[],
    );
    assert!(
        host.wait_for_log("worker finished", Duration::from_secs(15)),
        "{}",
        host.stderr()
    );
    let log = host.stderr();
    assert_eq!(log.matches("worker failed").count(), 2, "{log}");
    assert_eq!(log.matches("worker starting").count(), 3, "{log}");
    assert!(
        log.contains("restarting the worker after a pause component=worker ms=100"),
        "{log}"
    );
    assert!(
        log.contains("restarting the worker after a pause component=worker ms=200"),
        "{log}"
    );
    // Its stdout and stderr are logged with its label.
    assert!(log.contains("worker run 3"), "{log}");
    assert!(log.contains("worker run 1 fails on purpose"), "{log}");
    drop(host);
    // Its other exports can still be called.
    let out = run_amimono(
        &["call", app.path().to_str().unwrap(), "worker", "runs"],
        &[("AMIMONO_DATA_DIR", &data)],
    );
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout.trim(), "3");
}
