//! Routing and planning on synthetic apps (world shapes written by hand, no
//! wasm), for the cases the example components cannot produce: suggestions
//! of close names, cycles, semver matching.

use super::router::route;
use super::*;
use crate::app::{App, ItemShape, LoadedComponent, WorldShape};
use crate::manifest::Manifest;
use crate::placement::Placement;
use std::path::Path;
use std::sync::Arc;

fn interface(name: &str, functions: &[&str]) -> ItemShape {
    ItemShape {
        name: name.to_string(),
        functions: functions.iter().map(|f| f.to_string()).collect(),
        is_interface: true,
        defines_resources: false,
        local_only: Vec::new(),
    }
}

/// An app whose components (all in job `one` unless `jobs` says otherwise)
/// have the given imports and exports.
fn app(components: &[(&str, &[&str], &[&str])], extra: &str) -> App {
    let mut text = String::from("[app]\nname = \"t\"\n");
    for (label, _, _) in components {
        text.push_str(&format!(
            "\n[components.{label}]\nsource = \"{label}.wasm\"\n"
        ));
    }
    text.push_str(extra);
    if !extra.contains("[jobs.") {
        let labels: Vec<String> = components
            .iter()
            .map(|(l, _, _)| format!("\"{l}\""))
            .collect();
        text.push_str(&format!(
            "\n[jobs.one]\ncomponents = [{}]\n",
            labels.join(", ")
        ));
    }
    let manifest = Manifest::parse(Path::new("amimono.toml"), text).unwrap();
    let loaded = components
        .iter()
        .map(|(label, imports, exports)| {
            let spec = manifest.components[*label].clone();
            let world = WorldShape {
                imports: imports.iter().map(|i| interface(i, &["f"])).collect(),
                exports: exports.iter().map(|e| interface(e, &["f"])).collect(),
            };
            (
                label.to_string(),
                LoadedComponent {
                    spec,
                    bytes: Arc::new(Vec::new()),
                    world,
                },
            )
        })
        .collect();
    App {
        manifest,
        components: loaded,
        revision: "0".into(),
    }
}

#[test]
fn colocated_remote_and_host_routes() {
    let app = app(
        &[
            (
                "web",
                &[
                    "a:b/svc@0.1.0",
                    "wasi:clocks/wall-clock@0.2.6",
                    "amimono:runtime/context@0.1.0",
                ],
                &[],
            ),
            ("svc", &[], &["a:b/svc@0.1.3"]),
        ],
        "\n[jobs.front]\ncomponents = [\"web\"]\n\n[jobs.back]\ncomponents = [\"svc\"]\n",
    );
    let local = Placement::local(&app);
    assert_eq!(
        route(&app, &local, "web", "a:b/svc@0.1.0").unwrap(),
        Route::Colocated {
            exporter: "svc".into(),
            export: "a:b/svc@0.1.3".into()
        }
    );
    let front = Placement::for_job(&app, "front").unwrap();
    assert_eq!(
        route(&app, &front, "web", "a:b/svc@0.1.0").unwrap(),
        Route::Remote {
            exporter: "svc".into(),
            export: "a:b/svc@0.1.3".into(),
            job: "back".into()
        }
    );
    assert_eq!(
        route(&app, &local, "web", "wasi:clocks/wall-clock@0.2.6").unwrap(),
        Route::Host(HostInterface::Wasi)
    );
    assert_eq!(
        route(&app, &local, "web", "amimono:runtime/context@0.1.0").unwrap(),
        Route::Host(HostInterface::Member(crate::capabilities::runtime::CONTEXT))
    );
}

#[test]
fn unresolved_imports_suggest_close_exports() {
    let app = app(
        &[
            ("web", &["a:b/cart@0.1.0"], &[]),
            ("old", &[], &["a:b/cart@0.2.0"]),
            ("other", &[], &["x:y/cart@0.1.0"]),
            ("far", &[], &["q:r/zzz@0.1.0"]),
        ],
        "",
    );
    let err = route(&app, &Placement::local(&app), "web", "a:b/cart@0.1.0").unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(
            "component `web` imports `a:b/cart@0.1.0`, but no component of the app exports it"
        ),
        "{text}"
    );
    assert!(text.contains("`old` exports `a:b/cart@0.2.0`"), "{text}");
    assert!(text.contains("`other` exports `x:y/cart@0.1.0`"), "{text}");
    assert!(!text.contains("far"), "{text}");
}

#[test]
fn unknown_wasi_interfaces_are_named_as_unsupported() {
    let app = app(
        &[("web", &["wasi:blobstore/container@0.2.0-draft"], &[])],
        "",
    );
    let err = route(
        &app,
        &Placement::local(&app),
        "web",
        "wasi:blobstore/container@0.2.0-draft",
    )
    .unwrap_err();
    assert!(
        matches!(err, LinkError::UnsupportedHostInterface { .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("this host does not provide"),
        "{err}"
    );
}

#[test]
fn links_choose_among_exporters() {
    let links = "\n[components.web.links]\n\"a:b/svc\" = \"two\"\n";
    let app = app(
        &[
            ("web", &["a:b/svc@1.0.0"], &[]),
            ("one", &[], &["a:b/svc@1.0.0"]),
            ("two", &[], &["a:b/svc@1.2.0"]),
        ],
        links,
    );
    assert_eq!(
        route(&app, &Placement::local(&app), "web", "a:b/svc@1.0.0").unwrap(),
        Route::Colocated {
            exporter: "two".into(),
            export: "a:b/svc@1.2.0".into()
        }
    );
}

#[test]
fn cycles_are_reported_with_their_path() {
    let app = app(
        &[
            ("a", &["t:t/b"], &["t:t/a"]),
            ("b", &["t:t/c"], &["t:t/b"]),
            ("c", &["t:t/a"], &["t:t/c"]),
        ],
        "",
    );
    let errors = plan_graph(&app, &Placement::local(&app), "a").unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        errors[0].to_string(),
        "components import each other in a cycle: a → b → c → a; the components of a job must form an acyclic graph"
    );
}

#[test]
fn plans_put_exporters_before_importers_and_share_instances() {
    let app = app(
        &[
            ("web", &["t:t/x", "t:t/y"], &[]),
            ("x", &["t:t/z"], &["t:t/x"]),
            ("y", &["t:t/z"], &["t:t/y"]),
            ("z", &[], &["t:t/z"]),
            ("unrelated", &[], &["t:t/u"]),
        ],
        "",
    );
    let plan = plan_graph(&app, &Placement::local(&app), "web").unwrap();
    assert_eq!(plan.members, ["z", "x", "y", "web"]);
    assert_eq!(plan.wires_of("x").count(), 1);
}
