//! `AMIMONO_JOB=_config` and job selection.

use amimono_tests::{run_amimono, texts};

#[test]
fn config_prints_the_app_as_json() {
    let out = run_amimono(&["run", "examples/hello"], &[("AMIMONO_JOB", "_config")]);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    let config: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(config["app"], "hello");
    let revision = config["revision"].as_str().unwrap();
    assert_eq!(revision.len(), 16);
    assert!(revision.chars().all(|c| c.is_ascii_hexdigit()));
    let jobs = config["jobs"].as_object().unwrap();
    assert_eq!(jobs.keys().collect::<Vec<_>>(), ["backend", "web"]);
    let frontend = &config["jobs"]["web"]["components"]["frontend"];
    assert_eq!(frontend["binding"]["type"], "http");
    assert_eq!(
        config["jobs"]["backend"]["components"]["greeter"]["binding"]["type"],
        "rpc"
    );
    assert_eq!(
        config["jobs"]["backend"]["components"]["phrasebook"]["binding"]["type"],
        "rpc"
    );
    assert!(
        frontend["imports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i == "hello:app/greeter@0.1.0")
    );
    // The revision is stable across runs.
    let again = run_amimono(&["run", "examples/hello"], &[("AMIMONO_JOB", "_config")]);
    let again: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(again["revision"], config["revision"]);
}

#[test]
fn config_includes_addresses_from_the_bindings_file() {
    let dir = tempfile::tempdir().unwrap();
    let bindings = dir.path().join("b.toml");
    std::fs::write(
        &bindings,
        "[components.frontend]\ntype = \"http\"\ninternal = \"0.0.0.0:8080\"\nexternal = \"http://web.example:8080/\"\n",
    )
    .unwrap();
    let out = run_amimono(
        &["run", "examples/hello"],
        &[
            ("AMIMONO_JOB", "_config"),
            ("AMIMONO_BINDINGS", bindings.to_str().unwrap()),
        ],
    );
    let config: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let binding = &config["jobs"]["web"]["components"]["frontend"]["binding"];
    assert_eq!(binding["internal"], "0.0.0.0:8080");
    assert_eq!(binding["external"], "http://web.example:8080");
}

#[test]
fn unknown_job_lists_the_jobs() {
    let out = run_amimono(&["run", "examples/hello"], &[("AMIMONO_JOB", "frontdoor")]);
    let (_, err) = texts(&out);
    assert!(!out.status.success());
    assert!(err.contains("unknown job `frontdoor`"), "{err}");
    assert!(err.contains("`backend`, `web`"), "{err}");
    assert!(err.contains("_local"), "{err}");
}

#[test]
fn no_job_lists_the_jobs() {
    let out = run_amimono(&["run", "examples/hello"], &[]);
    let (_, err) = texts(&out);
    assert!(!out.status.success());
    assert!(err.contains("set AMIMONO_JOB"), "{err}");
    assert!(err.contains("`backend`, `web`"), "{err}");
}

#[test]
fn job_flag_mirrors_the_variable() {
    let out = run_amimono(&["run", "examples/hello", "--job", "_config"], &[]);
    assert!(out.status.success());
    let config: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(config["app"], "hello");
}

#[test]
fn a_job_whose_remote_callees_have_no_address_says_so() {
    // Without a bindings file the web job cannot know where `greeter` runs.
    let out = run_amimono(&["run", "examples/hello"], &[("AMIMONO_JOB", "web")]);
    let (_, err) = texts(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("no address is known for components that run in other jobs: `greeter` (job `backend`), imported by `frontend`"),
        "{err}"
    );
    assert!(err.contains("amimono bindings"), "{err}");
}

#[test]
fn a_named_layout_replaces_the_jobs_and_an_unknown_one_lists_the_layouts() {
    let out = run_amimono(
        &["run", "examples/boutique"],
        &[("AMIMONO_JOB", "_config"), ("AMIMONO_LAYOUT", "grouped")],
    );
    let (stdout, err) = texts(&out);
    assert!(out.status.success(), "{err}");
    let config: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(config["layout"], "grouped");
    assert_eq!(config["layouts"], serde_json::json!(["grouped"]));
    let jobs: Vec<&String> = config["jobs"].as_object().unwrap().keys().collect();
    assert_eq!(jobs, ["shop", "web"]);

    let out = run_amimono(
        &["run", "examples/boutique"],
        &[("AMIMONO_JOB", "web"), ("AMIMONO_LAYOUT", "nope")],
    );
    let (_, err) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("unknown layout `nope`: app `boutique` has the layouts `grouped`"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}
