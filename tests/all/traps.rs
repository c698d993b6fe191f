//! A guest trap fails its own request only; instances are per request.

use amimono_tests::{Host, get, temp_app};

const PROBE_APP: &str = "[app]\nname = \"probe\"\n\n[components.probe]\nbinding = \"http\"\nsource = \"{wasm:fixture_trap_http}\"\n\n[jobs.one]\ncomponents = [\"probe\"]\n";

#[test]
fn a_trap_is_a_500_logged_with_the_label_and_the_next_request_succeeds() {
    let app = temp_app(PROBE_APP);
    let host = Host::start(app.path(), &[("AMIMONO_JOB", "one")], &["probe"]);
    let url = host.url("probe");
    assert_eq!(get(&format!("{url}/")).status, 200);
    let reply = get(&format!("{url}/trap"));
    assert_eq!(reply.status, 500, "{reply:?}");
    // The client learns nothing internal: a generic message and an id...
    let id = amimono_tests::request_id(&reply.body);
    assert!(
        !reply.body.contains("probe") && !reply.body.contains("panicked"),
        "{reply:?}"
    );
    // ...which the log line with the detail and the label carries too.
    let line = host.log_record(&format!("request_id={id}"));
    assert!(
        line.contains("component=probe") && line.contains("wasm backtrace"),
        "{line}"
    );
    // The guest's own panic message reaches the log (its stderr).
    assert!(
        host.stderr().contains("fixture asked to trap"),
        "{}",
        host.stderr()
    );
    for _ in 0..3 {
        let reply = get(&format!("{url}/"));
        assert_eq!((reply.status, reply.body.as_str()), (200, "ok\n"));
    }
}

#[test]
fn memory_does_not_survive_between_requests() {
    let app = temp_app(PROBE_APP);
    let host = Host::start(app.path(), &[("AMIMONO_JOB", "one")], &["probe"]);
    for _ in 0..3 {
        assert_eq!(
            get(&format!("{}/count", host.url("probe"))).body.trim(),
            "1"
        );
    }
}

#[test]
fn a_trap_in_amimono_call_exits_1_with_the_trap_message() {
    let app = temp_app(PROBE_APP);
    let out = amimono_tests::run_amimono(
        &[
            "call",
            app.path().to_str().unwrap(),
            "probe",
            "boom",
            "\"kaboom\"",
        ],
        &[],
    );
    let (stdout, stderr) = amimono_tests::texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("component `probe` trapped in `fixtures:probe/control@0.1.0#boom`"),
        "{stderr}"
    );
    assert!(stderr.contains("kaboom"), "{stderr}");
    assert!(!stderr.contains("thread 'main' panicked"), "{stderr}");
    // The runtime interface answers the component's own label in a call too.
    let out = amimono_tests::run_amimono(
        &["call", app.path().to_str().unwrap(), "probe", "whoami"],
        &[],
    );
    assert_eq!(amimono_tests::texts(&out).0.trim(), "\"probe\"");
}
