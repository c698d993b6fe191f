//! Bindings files checked against synthetic apps (world shapes left empty,
//! no wasm): the schema, and the addresses of the job a process runs.

use super::*;

/// Job `one`: `web` and `admin` (http), `api` and `store` (rpc); job `two`
/// (two replicas): `site` (http) and `queue` (rpc).
fn app() -> App {
    let text = "[app]\nname = \"t\"\n\
        [components.web]\nsource = \"w.wasm\"\nbinding = \"http\"\n\
        [components.admin]\nsource = \"a.wasm\"\nbinding = \"http\"\n\
        [components.api]\nsource = \"p.wasm\"\nbinding = \"rpc\"\n\
        [components.store]\nsource = \"s.wasm\"\nbinding = \"rpc\"\n\
        [components.site]\nsource = \"i.wasm\"\nbinding = \"http\"\n\
        [components.queue]\nsource = \"q.wasm\"\nbinding = \"rpc\"\n\
        [jobs.one]\ncomponents = [\"web\", \"admin\", \"api\", \"store\"]\n\
        [jobs.two]\ncomponents = [\"site\", \"queue\"]\nreplicas = 2\n";
    App::from_manifest_text(text)
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
    match bindings(&app, entries).check_addresses(&app, &placement, 0) {
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

/// Each diagnostic of `error` as `line:col: message`.
fn positions(error: &BindingsError) -> Vec<String> {
    let diagnostics = match error {
        BindingsError::Invalid(problems) => problems,
        BindingsError::NoReplicaEntry { problems, .. } => problems,
        BindingsError::AddressConflict { conflicts, .. } => conflicts,
        other => panic!("unexpected error: {other}"),
    };
    diagnostics
        .iter()
        .map(|d| format!("{}:{}: {}", d.line, d.column, d.message))
        .collect()
}

const REPLICATED: &str = "[components.site]\ntype = \"http\"\ninternal = [\"127.0.0.1:8080\", \"127.0.0.1:8081\"]\n\n\
    [components.queue]\ntype = \"rpc\"\ninternal = \"0.0.0.0:9000\"\nexternal = [\"http://queue-0.queue:9000\", \"http://queue-1.queue:9000/\"]\n\n\
    [jobs.two]\nadmin = [\"127.0.0.1:9100\", \"127.0.0.1:9101\"]\n";

#[test]
fn lists_give_each_replica_its_own_entry_and_single_values_serve_them_all() {
    let app = app();
    let bindings = Bindings::parse(Path::new("b.toml"), REPLICATED, &app).unwrap();
    let site = &bindings.components["site"];
    assert_eq!(site.internal_of(0), Some("127.0.0.1:8080".parse().unwrap()));
    assert_eq!(site.internal_of(1), Some("127.0.0.1:8081".parse().unwrap()));
    assert_eq!(site.internal_of(2), None);
    // Without `external`, each replica is reached at its own address.
    assert_eq!(
        site.urls(),
        ["http://127.0.0.1:8080", "http://127.0.0.1:8081"]
    );
    assert_eq!(site.external_of(1), Some("http://127.0.0.1:8081"));
    let queue = &bindings.components["queue"];
    // One `internal` for every replica (each on its own machine).
    assert_eq!(queue.internal_of(0), queue.internal_of(1));
    assert_eq!(
        queue.urls(),
        ["http://queue-0.queue:9000", "http://queue-1.queue:9000"]
    );
    assert_eq!(
        bindings.admin["two"].get(1),
        Some(&"127.0.0.1:9101".parse().unwrap())
    );
    let placement = Placement::for_job(&app, "two").unwrap();
    for replica in [0, 1] {
        bindings.check_replica(&placement, replica).unwrap();
        bindings.check_addresses(&app, &placement, replica).unwrap();
    }
}

#[test]
fn a_replica_without_an_entry_names_every_list_missing_it() {
    let app = app();
    let bindings = Bindings::parse(Path::new("b.toml"), REPLICATED, &app).unwrap();
    let placement = Placement::for_job(&app, "two").unwrap();
    let error = bindings.check_replica(&placement, 2).unwrap_err();
    assert!(
        error.to_string().starts_with(
            "bindings file (AMIMONO_BINDINGS) has no address for replica 2 of job `two`"
        ),
        "{error}"
    );
    assert_eq!(
        positions(&error),
        [
            "3:12: `internal` of `site` lists 2 entries (replicas 0–1), none for replica 2",
            "8:12: `external` of `queue` lists 2 entries (replicas 0–1), none for replica 2",
            "11:9: `admin` of job `two` lists 2 entries (replicas 0–1), none for replica 2",
        ]
    );
    // Job `one` has none of those lists.
    let one = Placement::for_job(&app, "one").unwrap();
    bindings.check_replica(&one, 2).unwrap();
}

#[test]
fn every_problem_of_the_lists_is_reported_with_its_position() {
    let app = app();
    let text = "[components.site]\ntype = \"http\"\ninternal = [\"127.0.0.1:8080\"]\n\n\
        [components.queue]\ntype = \"rpc\"\ninternal = [\"127.0.0.1:9000\", \"nope\"]\nexternal = [\"http://a:1\", \"ftp://b\"]\n\n\
        [components.web]\ntype = \"http\"\ninternal = [\"127.0.0.1:1\", \"127.0.0.1:2\"]\n\n\
        [components.api]\ntype = \"rpc\"\ninternal = []\n\n\
        [jobs.two]\nadmin = [\"127.0.0.1:9100\", \"0.0.0.0:9100\"]\n";
    let error = Bindings::parse(Path::new("b.toml"), text, &app).unwrap_err();
    assert_eq!(
        positions(&error),
        [
            "3:12: `internal` lists 1 entry, but job `two` has 2 replicas: give one entry per replica, or a single value for every replica",
            "7:31: `internal` must be an IP address and port such as `127.0.0.1:8080`, not `nope`",
            "8:27: `external` must be a URL such as `http://127.0.0.1:8080`, not `ftp://b`",
            "12:12: `internal` lists 2 entries, but job `one` has 1 replica: give one entry per replica, or a single value for every replica",
            "16:12: `internal` lists 0 entries, but job `one` has 1 replica: give one entry per replica, or a single value for every replica",
            "19:28: replicas 0 and 1 of job `two` would both listen on 0.0.0.0:9100: a list gives each replica an address of its own (a single value serves every replica, each on its own machine)",
        ]
    );
    // A list of something else than strings is a schema problem.
    let error =
        Bindings::parse(Path::new("b.toml"), "[jobs.one]\nadmin = [9100]\n", &app).unwrap_err();
    assert_eq!(
        positions(&error),
        ["2:10: invalid type: integer `9100`, expected a string"]
    );
}

#[test]
fn the_listeners_of_each_replica_are_checked_apart() {
    let app = app();
    let text = "[components.site]\ntype = \"http\"\ninternal = [\"127.0.0.1:8080\", \"127.0.0.1:8081\"]\n\n\
        [components.queue]\ntype = \"rpc\"\ninternal = [\"127.0.0.1:9000\", \"127.0.0.1:8081\"]\n";
    let bindings = Bindings::parse(Path::new("b.toml"), text, &app).unwrap();
    let mut placement = Placement::for_job(&app, "two").unwrap();
    // Nothing calls `queue` from another job here; force it to be served.
    placement.force_remote = true;
    bindings.check_addresses(&app, &placement, 0).unwrap();
    let error = bindings.check_addresses(&app, &placement, 1).unwrap_err();
    assert_eq!(
        positions(&error),
        [
            "7:31: components `site` (http) and `queue` (rpc) of job `two` both listen on 127.0.0.1:8081: give each HTTP component an address of its own (only rpc components of one job may share one)"
        ]
    );
}
