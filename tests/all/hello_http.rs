//! The hello example served over HTTP, under every layout.

use amimono_tests::{
    Deployment, Host, Layout, free_port, get, hello_app, run_amimono, temp_app, texts,
};
use std::time::Duration;

amimono_tests::in_every_layout!([
    hello_world_over_http,
    bad_names_are_4xx_from_result_errors_not_traps,
    lists_cross_the_boundaries,
    runtime_interface_answers_per_component,
    serves_requests_concurrently,
]);

fn hello_world_over_http(layout: Layout) {
    let app = Deployment::hello(layout);
    let url = app.url();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let reply = get(&format!("{url}/hello/world"));
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(reply.body.contains("Hello, world!"), "{reply:?}");
    let reply = get(&format!("{url}/hello/Marie?lang=fr"));
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(
        reply.body.starts_with("Bonjour, Marie ! (visit "),
        "{reply:?}"
    );
}

fn bad_names_are_4xx_from_result_errors_not_traps(layout: Layout) {
    let app = Deployment::hello(layout);
    let url = app.url();
    for path in ["/hello/", "/hello", "/hello/%20%20"] {
        let reply = get(&format!("{url}{path}"));
        assert_eq!(reply.status, 400, "{path}: {reply:?}");
    }
    let reply = get(&format!("{url}/hello/%3Cscript%3E"));
    assert_eq!(reply.status, 400, "{reply:?}");
    assert!(reply.body.contains("<script>"), "{reply:?}");
    let reply = get(&format!("{url}/hello/x?lang=tlh"));
    assert_eq!(reply.status, 404, "{reply:?}");
    assert!(reply.body.contains("tlh"), "{reply:?}");
    // None of these trapped or failed a remote call.
    assert!(!app.logs().contains("failed"), "{}", app.logs());
}

fn lists_cross_the_boundaries(layout: Layout) {
    let app = Deployment::hello(layout);
    let url = app.url();
    let reply = get(&format!("{url}/greet-all/ada,,bob"));
    assert_eq!(reply.status, 200, "{reply:?}");
    let lines: Vec<&str> = reply.body.lines().collect();
    assert_eq!(lines.len(), 3, "{reply:?}");
    assert_eq!(lines[0], "Hello, ada!");
    assert!(lines[1].starts_with("error"), "{reply:?}");
    assert_eq!(lines[2], "Hello, bob!");
    let reply = get(&format!("{url}/languages"));
    assert_eq!(
        reply.body.lines().collect::<Vec<_>>(),
        ["de", "en", "es", "fr"]
    );
}

fn runtime_interface_answers_per_component(layout: Layout) {
    let app = Deployment::hello(layout);
    let reply = get(&format!("{}/about", app.url()));
    assert_eq!(reply.status, 200, "{reply:?}");
    let about: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(about["label"], "frontend");
    assert_eq!(about["app"], "hello");
    let job = if layout == Layout::Split {
        "web"
    } else {
        "_local"
    };
    assert_eq!(about["job"], job);
    assert_eq!(about["greeter"]["type"], "rpc");
    assert_eq!(about["greeter"]["job"], "backend");
    // The greeter has an address exactly when calls to it go over HTTP.
    assert_eq!(
        about["greeter"]["url"].is_null(),
        layout == Layout::Local,
        "{about}"
    );
    let (config, _) = texts(&run_amimono(
        &["run", "examples/hello"],
        &[("AMIMONO_JOB", "_config")],
    ));
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(about["revision"], config["revision"]);
}

fn serves_requests_concurrently(layout: Layout) {
    let app = Deployment::hello(layout);
    let url = app.url().to_string();
    let workers: Vec<_> = (0..8)
        .map(|i| {
            let url = url.clone();
            std::thread::spawn(move || {
                for j in 0..25 {
                    let reply = get(&format!("{url}/hello/n{i}x{j}"));
                    assert_eq!(reply.status, 200);
                    assert!(
                        reply.body.starts_with(&format!("Hello, n{i}x{j}! (visit ")),
                        "{reply:?}"
                    );
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
}

#[test]
fn bindings_file_gives_addresses() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let bindings = dir.path().join("b.toml");
    std::fs::write(
        &bindings,
        format!(
            "[components.frontend]\ntype = \"http\"\ninternal = \"127.0.0.1:{port}\"\nexternal = \"http://127.0.0.1:{port}\"\n\n\
             [components.greeter]\ntype = \"rpc\"\ninternal = \"127.0.0.1:1\"\nexternal = \"http://greeter.internal:9000\"\n"
        ),
    )
    .unwrap();
    let host = Host::start(
        &hello_app(),
        &[
            ("AMIMONO_JOB", "_local"),
            ("AMIMONO_BINDINGS", bindings.to_str().unwrap()),
        ],
        &["frontend"],
    );
    assert_eq!(host.url("frontend"), format!("http://127.0.0.1:{port}"));
    let reply = get(&format!("http://127.0.0.1:{port}/hello/world"));
    assert!(reply.body.starts_with("Hello, world! (visit "), "{reply:?}");
    let about: serde_json::Value =
        serde_json::from_str(&get(&format!("http://127.0.0.1:{port}/about")).body).unwrap();
    assert_eq!(about["greeter"]["url"], "http://greeter.internal:9000");
}

#[test]
fn bindings_file_without_an_entry_for_a_served_component_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bindings = dir.path().join("b.toml");
    std::fs::write(
        &bindings,
        "[components.greeter]\ntype = \"rpc\"\ninternal = \"127.0.0.1:9\"\n",
    )
    .unwrap();
    let out = run_amimono(
        &["run", "examples/hello"],
        &[
            ("AMIMONO_JOB", "_local"),
            ("AMIMONO_BINDINGS", bindings.to_str().unwrap()),
        ],
    );
    let (_, err) = texts(&out);
    assert!(!out.status.success());
    assert!(err.contains("no entry for component `frontend`"), "{err}");
    assert!(err.contains("[components.frontend]"), "{err}");
}

#[test]
fn bindings_file_errors_point_at_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let bindings = dir.path().join("b.toml");
    std::fs::write(
        &bindings,
        "[components.frontend]\ntype = \"http\"\ninternal = \"localhost\"\n\n[components.nope]\ntype = \"rpc\"\ninternal = \"127.0.0.1:1\"\n",
    )
    .unwrap();
    let out = run_amimono(
        &["run", "examples/hello"],
        &[
            ("AMIMONO_JOB", "_local"),
            ("AMIMONO_BINDINGS", bindings.to_str().unwrap()),
        ],
    );
    let (_, err) = texts(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("b.toml:3:12: `internal` must be an IP address and port"),
        "{err}"
    );
    assert!(
        err.contains("b.toml:5:13: app `hello` has no component `nope`"),
        "{err}"
    );
}

#[test]
fn two_http_components_in_one_job_each_serve_on_their_own_address() {
    let app = temp_app(
        r#"
[app]
name = "two-http"

[components.frontend]
binding = "http"
keyvalue = ["visits"]
source = "{wasm:hello_frontend}"

[components.greeter]
binding = "rpc"
source = "{wasm:hello_greeter}"

[components.phrasebook]
binding = "rpc"
source = "{wasm:hello_phrasebook}"

[components.probe]
binding = "http"
source = "{wasm:fixture_trap_http}"

[jobs.all]
components = ["frontend", "greeter", "phrasebook", "probe"]
"#,
    );
    let host = Host::start(
        app.path(),
        &[("AMIMONO_JOB", "all")],
        &["frontend", "probe"],
    );
    assert_ne!(host.url("frontend"), host.url("probe"));
    assert!(
        get(&format!("{}/hello/world", host.url("frontend")))
            .body
            .starts_with("Hello, world!")
    );
    assert_eq!(
        get(&format!("{}/label", host.url("probe"))).body.trim(),
        "probe"
    );
    assert!(host.wait_for_log("job running", Duration::from_secs(5)));
}
