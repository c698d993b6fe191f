//! Bindings files checked against synthetic apps (world shapes left empty,
//! no wasm): the schema, and the addresses of the job a process runs.

use super::*;
use crate::app::{LoadedComponent, WorldShape};
use crate::manifest::Manifest;
use std::sync::Arc;

/// Job `one`: `web` and `admin` (http), `api` and `store` (rpc); job `two`:
/// `site` (http) and `queue` (rpc).
fn app() -> App {
    let text = "[app]\nname = \"t\"\n\
        [components.web]\nsource = \"w.wasm\"\nbinding = \"http\"\n\
        [components.admin]\nsource = \"a.wasm\"\nbinding = \"http\"\n\
        [components.api]\nsource = \"p.wasm\"\nbinding = \"rpc\"\n\
        [components.store]\nsource = \"s.wasm\"\nbinding = \"rpc\"\n\
        [components.site]\nsource = \"i.wasm\"\nbinding = \"http\"\n\
        [components.queue]\nsource = \"q.wasm\"\nbinding = \"rpc\"\n\
        [jobs.one]\ncomponents = [\"web\", \"admin\", \"api\", \"store\"]\n\
        [jobs.two]\ncomponents = [\"site\", \"queue\"]\n";
    let manifest = Manifest::parse(Path::new("amimono.toml"), text.into()).unwrap();
    let components = manifest
        .components
        .values()
        .map(|spec| {
            let component = LoadedComponent {
                spec: spec.clone(),
                bytes: Arc::new(Vec::new()),
                world: WorldShape {
                    imports: Vec::new(),
                    exports: Vec::new(),
                },
            };
            (spec.label.clone(), component)
        })
        .collect();
    App {
        manifest,
        components,
        revision: "0".into(),
    }
}

/// A bindings file giving each `(label, address)` its `internal` address.
fn bindings(app: &App, entries: &[(&str, &str)]) -> Bindings {
    let mut text = String::new();
    for (label, address) in entries {
        let binding = app.component(label).unwrap().spec.binding;
        text.push_str(&format!(
            "[components.{label}]\ntype = \"{binding}\"\ninternal = \"{address}\"\n\n"
        ));
    }
    Bindings::parse(Path::new("b.toml"), &text, app).unwrap()
}

/// The conflicts `check_addresses` reports for job `job` (none: `Ok`).
fn conflicts(entries: &[(&str, &str)], job: &str, force_remote: bool) -> Vec<String> {
    let app = app();
    let mut placement = Placement::for_job(&app, job).unwrap();
    placement.force_remote = force_remote;
    match bindings(&app, entries).check_addresses(&app, &placement) {
        Ok(()) => Vec::new(),
        Err(BindingsError::AddressConflict {
            job: named,
            conflicts,
        }) => {
            assert_eq!(named, job);
            conflicts
                .iter()
                .map(|d| format!("{}:{}: {}", d.line, d.column, d.message))
                .collect()
        }
        Err(other) => panic!("unexpected error: {other}"),
    }
}

#[test]
fn two_http_components_of_one_job_on_one_address_conflict() {
    let found = conflicts(
        &[("web", "127.0.0.1:8080"), ("admin", "127.0.0.1:8080")],
        "one",
        false,
    );
    assert_eq!(
        found,
        [
            "3:12: components `admin` (http) and `web` (http) of job `one` both listen on 127.0.0.1:8080: give each HTTP component an address of its own (only rpc components of one job may share one)"
        ]
    );
}

#[test]
fn an_http_component_on_the_rpc_listeners_address_conflicts() {
    let found = conflicts(
        &[
            ("web", "127.0.0.1:8080"),
            ("api", "127.0.0.1:9000"),
            ("store", "127.0.0.1:8080"),
        ],
        "one",
        false,
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("11:12: components `web` (http) and `store` (rpc) of job `one` both listen on 127.0.0.1:8080"),
        "{found:?}"
    );
}

#[test]
fn a_wildcard_address_overlaps_a_specific_one_on_the_same_port() {
    let found = conflicts(
        &[("web", "0.0.0.0:8080"), ("admin", "127.0.0.1:8080")],
        "one",
        false,
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("listen on 127.0.0.1:8080 and 0.0.0.0:8080, which overlap"),
        "{found:?}"
    );
    let found = conflicts(
        &[("web", "[::]:8080"), ("admin", "127.0.0.1:8080")],
        "one",
        false,
    );
    assert_eq!(found.len(), 1, "{found:?}");
}

#[test]
fn addresses_that_can_all_be_bound_are_accepted() {
    // The rpc components of one job share one listener.
    assert_eq!(
        conflicts(
            &[
                ("web", "127.0.0.1:8080"),
                ("admin", "127.0.0.1:8081"),
                ("api", "127.0.0.1:9000"),
                ("store", "127.0.0.1:9000"),
            ],
            "one",
            false,
        ),
        Vec::<String>::new()
    );
    // Other jobs run on other machines: the same address is theirs too.
    let everywhere = [
        ("web", "0.0.0.0:8080"),
        ("api", "0.0.0.0:9000"),
        ("site", "0.0.0.0:8080"),
        ("queue", "0.0.0.0:9000"),
    ];
    assert_eq!(conflicts(&everywhere, "one", false), Vec::<String>::new());
    assert_eq!(conflicts(&everywhere, "two", false), Vec::<String>::new());
    // Port 0 is any free port; other IPs or families do not overlap.
    let apart = [
        ("web", "127.0.0.1:0"),
        ("admin", "127.0.0.1:0"),
        ("api", "127.0.0.2:8080"),
        ("store", "127.0.0.2:8080"),
    ];
    assert_eq!(conflicts(&apart, "one", false), Vec::<String>::new());
    let families = [("web", "0.0.0.0:8080"), ("admin", "[::1]:8080")];
    assert_eq!(conflicts(&families, "one", false), Vec::<String>::new());
}

#[test]
fn under_local_rpc_addresses_count_only_when_calls_are_forced_over_http() {
    let shared = [("web", "127.0.0.1:8080"), ("api", "127.0.0.1:8080")];
    // `_local` serves no rpc listener: nothing calls its rpc components.
    assert_eq!(conflicts(&shared, "_local", false), Vec::<String>::new());
    assert_eq!(conflicts(&shared, "_local", true).len(), 1);
    // HTTP components of every job run in the `_local` process.
    let http = [("web", "127.0.0.1:8080"), ("site", "127.0.0.1:8080")];
    assert_eq!(conflicts(&http, "_local", false).len(), 1);
}

#[test]
fn every_schema_problem_of_the_file_is_reported() {
    let app = app();
    let text = "revision = 3\n\n[components.web]\ntype = \"http\"\ninternal = \"127.0.0.1:1\"\nport = 1\n\n[components.api]\ntype = \"rpx\"\ninternal = 9000\n";
    let Err(BindingsError::Invalid(problems)) = Bindings::parse(Path::new("b.toml"), text, &app)
    else {
        panic!("accepted");
    };
    let found: Vec<String> = problems
        .iter()
        .map(|d| format!("{}:{}", d.line, d.column))
        .collect();
    assert_eq!(found, ["1:12", "6:1", "9:8", "10:12"], "{problems:?}");
}
