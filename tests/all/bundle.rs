//! `amimono build`, `inspect`, and running jobs from the bundle.

use amimono_tests::{Host, get, hello_bindings, run_amimono, texts};
use std::path::Path;

/// Builds the hello bundle into `dir`; (stdout, stderr, bundle path).
fn build(dir: &Path) -> (String, String, std::path::PathBuf) {
    let bundle = dir.join("hello.amimono");
    let out = run_amimono(
        &["build", "examples/hello", "--out", bundle.to_str().unwrap()],
        &[],
    );
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    (stdout, stderr, bundle)
}

fn revision() -> String {
    let out = run_amimono(&["run", "examples/hello"], &[("AMIMONO_JOB", "_config")]);
    let config: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    config["revision"].as_str().unwrap().to_string()
}

#[test]
fn build_reports_progress_and_prints_the_bundle_and_revision_last() {
    let dir = tempfile::tempdir().unwrap();
    let (stdout, stderr, bundle) = build(dir.path());
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines[0].starts_with(&format!("bundle {}", bundle.display())),
        "{stdout}"
    );
    assert_eq!(lines[1], format!("revision {}", revision()));
    for component in ["frontend", "greeter", "phrasebook"] {
        assert!(
            stderr.contains(&format!("building `{component}`")),
            "{stderr}"
        );
        assert!(
            stderr.contains(&format!("built `{component}` in")),
            "{stderr}"
        );
    }
    for job in ["web", "backend", "_local"] {
        assert!(
            stderr.contains(&format!("job `{job}`: composed and compiled")),
            "{stderr}"
        );
    }
    assert!(bundle.exists());
}

#[test]
fn inspect_lists_jobs_components_links_and_the_revision() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _, bundle) = build(dir.path());
    let out = run_amimono(&["inspect", bundle.to_str().unwrap()], &[]);
    let (text, err) = texts(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        text.contains(&format!("revision  {}", revision())),
        "{text}"
    );
    assert!(
        text.contains("precompiled graphs fit this host's engine"),
        "{text}"
    );
    assert!(text.contains("frontend (binding http, job web"), "{text}");
    assert!(text.contains("exports hello:app/greeter@0.1.0"), "{text}");
    assert!(text.contains("web: frontend"), "{text}");
    assert!(text.contains("backend: greeter, phrasebook"), "{text}");
    assert!(
        text.contains(
            "frontend: hello:app/greeter@0.1.0 → greeter (remote: job backend, over HTTP)"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "greeter: hello:app/phrasebook@0.1.0 → phrasebook (colocated: linked in the graph)"
        ),
        "{text}"
    );
}

#[test]
fn jobs_run_from_the_bundle_without_compiling() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _, bundle) = build(dir.path());
    let bundle = bundle.to_str().unwrap();
    let (bindings, web_port, _) = hello_bindings(dir.path());
    let bindings = bindings.to_str().unwrap();
    // An empty compile cache that must stay empty: nothing is compiled.
    let cache = dir.path().join("cache");
    let cache = cache.to_str().unwrap();
    let env = |job| {
        [
            ("AMIMONO_JOB", job),
            ("AMIMONO_BINDINGS", bindings),
            ("AMIMONO_CACHE_DIR", cache),
        ]
    };
    let backend = Host::start(Path::new(bundle), &env("backend"), &[]);
    backend.wait_running();
    let web = Host::start(Path::new(bundle), &env("web"), &["frontend"]);
    assert_eq!(web.url("frontend"), format!("http://127.0.0.1:{web_port}"));
    let reply = get(&format!("http://127.0.0.1:{web_port}/hello/world"));
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(reply.body.starts_with("Hello, world! (visit "), "{reply:?}");
    assert!(
        !Path::new(cache).exists(),
        "something was compiled at start"
    );
    assert!(
        !web.stderr().contains("compiling instead"),
        "{}",
        web.stderr()
    );
}

#[test]
fn a_damaged_bundle_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _, bundle) = build(dir.path());
    let bytes = std::fs::read(&bundle).unwrap();
    let damaged = dir.path().join("damaged.amimono");
    std::fs::write(&damaged, &bytes[..bytes.len() / 3]).unwrap();
    let out = run_amimono(&["inspect", damaged.to_str().unwrap()], &[]);
    let (_, err) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("damaged.amimono"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    // A flipped byte inside a precompiled artifact (an ELF image) is caught
    // by its digest before anything is deserialized.
    let mut flipped = bytes.clone();
    let elf = flipped
        .windows(4)
        .position(|w| w == b"\x7fELF")
        .expect("no precompiled artifact in the bundle");
    flipped[elf + 4096] ^= 0xff;
    std::fs::write(&damaged, &flipped).unwrap();
    let out = run_amimono(&["inspect", damaged.to_str().unwrap()], &[]);
    let (_, err) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("is corrupt: `precompiled/"), "{err}");
    assert!(err.contains("does not match its digest"), "{err}");

    let out = run_amimono(&["inspect", "examples/hello"], &[]);
    let (_, err) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("is not a bundle file"), "{err}");
}

#[test]
fn a_named_layout_runs_from_the_bundle_without_compiling() {
    use amimono_tests::{Deployment, Layout};
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("boutique.amimono");
    let out = run_amimono(
        &[
            "build",
            "examples/boutique",
            "--out",
            bundle.to_str().unwrap(),
        ],
        &[],
    );
    let (_, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("job `grouped:web`"), "{stderr}");
    // An empty compile cache that must stay empty: nothing is compiled.
    let cache = dir.path().join("cache");
    let deployment = Deployment::start_with(
        &bundle,
        Layout::Named("grouped"),
        &[
            ("AMIMONO_KEYVALUE", "memory"),
            ("AMIMONO_CACHE_DIR", cache.to_str().unwrap()),
        ],
    );
    assert_eq!(deployment.hosts.len(), 2);
    let reply = get(&format!("{}/", deployment.url_of("frontend")));
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(reply.body.contains("Sunglasses"), "{reply:?}");
    assert!(!cache.exists(), "something was compiled at start");
}
