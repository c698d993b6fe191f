//! The dashboard: `amimono up examples/hello --dashboard` serves a page
//! that a real browser (Debian's Chromium, driven by Playwright from
//! `tests/browser/dashboard.mjs`; `cargo xtask test` installs both) loads
//! without console errors, showing the app's three components, the
//! `frontend → greeter` edge once requests were sent, and advice about it.
//! A screenshot is saved as `target/dashboard.png`. The same data is
//! checked through `GET /api/state`, and the traces the jobs send it.

use amimono_tests::{Host, free_port, get, hello_manifest, root, temp_app};
use std::process::Command;
use std::time::{Duration, Instant};

fn start_up_with_dashboard(app: &tempfile::TempDir) -> (Host, String) {
    let dashboard = format!("127.0.0.1:{}", free_port());
    let up = Host::start_up(
        app.path(),
        &["--dashboard", &dashboard],
        // Every request measures its colocated calls: the local edge shows.
        &[("AMIMONO_LOCAL_SAMPLE_RATIO", "1")],
        &[
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        ],
        &["frontend", "admin web", "admin backend", "dashboard"],
    );
    let url = up.url("dashboard").to_string();
    (up, url)
}

/// Waits (60 s at most) until the dashboard's state satisfies `done`.
fn wait_for_state(
    url: &str,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let reply = get(&format!("{url}api/state"));
        assert_eq!(reply.status, 200, "{}", reply.body);
        let state: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
        if done(&state) {
            return state;
        }
        assert!(Instant::now() < until, "no {what} within 60 s: {state:#}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn has_edge(state: &serde_json::Value, caller: &str, callee: &str, placement: &str) -> bool {
    state["edges"].as_array().is_some_and(|edges| {
        edges.iter().any(|e| {
            e["caller"] == caller && e["component"] == callee && e["placement"] == placement
        })
    })
}

#[test]
fn the_dashboard_shows_the_hello_app_its_call_graph_traces_and_advice_in_chromium() {
    let app = temp_app(&hello_manifest());
    let (up, dashboard) = start_up_with_dashboard(&app);
    assert!(dashboard.starts_with("http://127.0.0.1:"), "{dashboard}");
    // Before any request: the page lists the components, and no edge.
    let page = get(&dashboard);
    assert_eq!(page.status, 200);
    for label in ["frontend", "greeter", "phrasebook"] {
        assert!(
            page.body.contains(&format!("data-component=\"{label}\"")),
            "{label}"
        );
    }
    assert!(
        !page.body.contains("class=\"edge "),
        "no calls yet, no edge"
    );
    for name in ["ada", "bob", "cy", "dee"] {
        let reply = get(&format!("{}/hello/{name}", up.url("frontend")));
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let state = wait_for_state(&dashboard, "edges and traces", |state| {
        has_edge(state, "frontend", "greeter", "remote")
            && has_edge(state, "greeter", "phrasebook", "local")
            && state["traces"].as_array().is_some_and(|t| t.len() >= 4)
    });
    let advice = state["advice"].as_array().unwrap();
    let colocate = advice
        .iter()
        .find(|a| a["subject"] == "frontend→greeter")
        .unwrap_or_else(|| panic!("no advice about frontend→greeter: {state:#}"));
    assert_eq!(colocate["kind"], "colocate");
    assert!(
        colocate["layout"]
            .as_str()
            .unwrap()
            .contains("components = [\"frontend\", \"greeter\"]"),
        "{colocate:#}"
    );
    // A trace's waterfall crosses both jobs.
    let page = get(&dashboard);
    for span in ["GET frontend", "greeter.greet-in", "phrasebook.phrase"] {
        assert!(
            page.body.contains(&format!("data-span=\"{span}\"")),
            "{span} in the waterfall"
        );
    }
    // Log lines of the components, relayed by `up`.
    assert!(
        page.body.contains("data-source=\"job web\""),
        "the web job's lines"
    );

    // The page in a real browser.
    let screenshot = root().join("target/dashboard.png");
    let _ = std::fs::remove_file(&screenshot);
    let output = Command::new("node")
        .arg(root().join("tests/browser/dashboard.mjs"))
        .arg(&dashboard)
        .arg(&screenshot)
        .env(
            "PLAYWRIGHT_CORE",
            root().join("target/tools/node/node_modules/playwright-core/index.mjs"),
        )
        .output()
        .expect(
            "running node (the machine's Node.js; `cargo xtask test` installs playwright-core)",
        );
    assert!(
        output.status.success(),
        "the dashboard failed in Chromium:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let summary = String::from_utf8_lossy(&output.stdout);
    assert!(summary.contains("frontend→greeter"), "{summary}");
    assert!(
        screenshot.is_file(),
        "a screenshot at {}",
        screenshot.display()
    );
}

#[test]
fn the_dashboard_refuses_what_it_does_not_serve() {
    let app = temp_app(&hello_manifest());
    let (_up, dashboard) = start_up_with_dashboard(&app);
    assert_eq!(get(&format!("{dashboard}nothing")).status, 404);
    // Not an OTLP export: refused, nothing internal said.
    let refused = ureq::post(&format!("{dashboard}v1/traces"))
        .config()
        .http_status_as_error(false)
        .build()
        .send(&b"\xff\xffnot protobuf"[..])
        .unwrap();
    assert_eq!(refused.status(), 400);
}

#[test]
fn up_refuses_a_dashboard_off_loopback() {
    let app = temp_app(&hello_manifest());
    let out = amimono_tests::run_amimono(
        &[
            "up",
            app.path().to_str().unwrap(),
            "--dashboard",
            "0.0.0.0:18299",
        ],
        &[],
    );
    let (_, stderr) = amimono_tests::texts(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("loopback only"), "{stderr}");
}
