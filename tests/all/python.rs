//! A component nobody wrote in Rust: the hello phrasebook in Python
//! (componentize-py, `examples/hello-py`), linked with the Rust greeter and
//! frontend. The host only sees WIT.

use amimono_tests::{Host, get, root, run_amimono, texts};

#[test]
fn rust_components_call_a_python_component() {
    let app = root().join("examples/hello-py");
    let out = run_amimono(
        &[
            "call",
            app.to_str().unwrap(),
            "greeter",
            "greet-in",
            "\"world\"",
            "some(\"it\")",
        ],
        &[],
    );
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stdout.trim(),
        r#"ok({name: "world", message: "Ciao, world!", language: "it"})"#
    );
    let host = Host::start(&app, &[("AMIMONO_JOB", "_local")], &["frontend"]);
    let reply = get(&format!("{}/hello/world?lang=it", host.url("frontend")));
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(reply.body.starts_with("Ciao, world!"), "{reply:?}");
    let languages = get(&format!("{}/languages", host.url("frontend"))).body;
    assert_eq!(
        languages.lines().collect::<Vec<_>>(),
        ["de", "en", "es", "fr", "it"]
    );
}
