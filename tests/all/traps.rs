//! A guest trap fails its own request only; instances are per request.

use amimono_tests::{Host, get, temp_app};
use std::time::Duration;

const PROBE_APP: &str = "[app]\nname = \"probe\"\n\n[components.probe]\nbinding = \"http\"\nsource = \"{wasm:fixture_trap_http}\"\n\n[jobs.one]\ncomponents = [\"probe\"]\n";

#[test]
fn a_trap_is_a_500_logged_with_the_label_and_the_next_request_succeeds() {
    let app = temp_app(PROBE_APP);
    let host = Host::start(app.path(), &[("AMIMONO_JOB", "one")], &["probe"]);
    let url = host.url("probe");
    assert_eq!(get(&format!("{url}/")).status, 200);
    let reply = get(&format!("{url}/trap"));
    assert_eq!(reply.status, 500, "{reply:?}");
    assert!(reply.body.contains("component `probe`"), "{reply:?}");
    assert!(
        host.wait_for_log("component=probe", Duration::from_secs(5)),
        "{}",
        host.stderr()
    );
    assert!(
        host.stderr().contains("request failed"),
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
