//! Structured logs: `AMIMONO_LOG_FORMAT=json` makes every line the host
//! writes one JSON object with the app, job and revision, and the lines
//! about a component (its trap, its own stderr) carry its label.

use amimono_tests::{Host, get, temp_app};
use std::time::{Duration, Instant};

const PROBE_APP: &str = "[app]\nname = \"probe\"\n\n[components.probe]\nbinding = \"http\"\nsource = \"{wasm:fixture_trap_http}\"\n\n[jobs.one]\ncomponents = [\"probe\"]\n";

#[test]
fn json_logs_are_one_object_per_line_with_the_process_and_the_component() {
    let app = temp_app(PROBE_APP);
    let host = Host::start(
        app.path(),
        &[("AMIMONO_JOB", "one"), ("AMIMONO_LOG_FORMAT", "json")],
        &["probe"],
    );
    let reply = get(&format!("{}/trap", host.url("probe")));
    assert_eq!(reply.status, 500, "{reply:?}");
    let id = amimono_tests::request_id(&reply.body);
    // The trap's line and the guest's panic message (its stderr).
    let until = Instant::now() + Duration::from_secs(10);
    let parsed = loop {
        let text = host.stderr();
        let parsed: Vec<serde_json::Value> = text
            .lines()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
            })
            .collect();
        let trap = parsed.iter().any(|l| l["request_id"] == id.as_str());
        let panic = parsed.iter().any(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.contains("fixture asked to trap"))
        });
        if trap && panic {
            break parsed;
        }
        assert!(
            Instant::now() < until,
            "no trap or guest line within 10 s:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    for line in &parsed {
        assert_eq!(line["app"], "probe", "{line}");
        assert_eq!(line["job"], "one", "{line}");
        assert!(
            line["revision"].as_str().is_some_and(|r| r.len() >= 8),
            "{line}"
        );
        assert!(line["time"].as_str().is_some(), "{line}");
        assert!(line["level"].as_str().is_some(), "{line}");
    }
    let trap = parsed
        .iter()
        .find(|l| l["request_id"] == id.as_str())
        .unwrap();
    assert_eq!(trap["component"], "probe", "{trap}");
    assert_eq!(trap["level"], "error", "{trap}");
    let guest = parsed
        .iter()
        .find(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.contains("fixture asked to trap"))
        })
        .unwrap();
    assert_eq!(guest["component"], "probe", "{guest}");
    assert_eq!(guest["target"], "guest", "{guest}");
}

#[test]
fn an_unknown_log_format_is_refused_naming_the_choices() {
    let output = amimono_tests::run_amimono(&["run", "nowhere"], &[("AMIMONO_LOG_FORMAT", "xml")]);
    let (_, stderr) = amimono_tests::texts(&output);
    assert!(!output.status.success());
    assert!(
        stderr.contains("xml") && stderr.contains("json") && stderr.contains("text"),
        "{stderr}"
    );
}
