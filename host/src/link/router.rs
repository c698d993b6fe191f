//! The one place that decides where an import goes. Every import of every
//! component is routed here: to a colocated component's export (linked
//! directly), to another job (remote), or to the host (WASI, the amimono
//! runtime interface). Nothing else in the host knows whether a callee is
//! colocated.

use super::LinkError;
use crate::app::{App, InterfaceName};
use crate::capabilities::MemberInterface;
use crate::placement::{LOCAL_JOB, Placement};
use std::collections::{BTreeMap, BTreeSet};

/// WASI packages the host implements, with wasmtime-wasi and wasmtime-wasi-http.
pub const HOST_WASI_PACKAGES: &[&str] = &[
    "wasi:io",
    "wasi:clocks",
    "wasi:random",
    "wasi:cli",
    "wasi:filesystem",
    "wasi:sockets",
    "wasi:http",
];

/// Interfaces the host provides itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostInterface {
    /// A WASI interface shared by a graph's members (wasmtime-wasi,
    /// wasmtime-wasi-http).
    Wasi,
    /// An interface answered per component ([`MemberInterface`]).
    Member(MemberInterface),
}

/// Where one import of one component goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// To an export of a component in this process: linked directly.
    Colocated {
        /// The exporting component.
        exporter: String,
        /// The export's exact name.
        export: String,
    },
    /// To an export of a component in another job.
    Remote {
        /// The exporting component.
        exporter: String,
        /// The export's exact name.
        export: String,
        /// The exporter's job.
        job: String,
    },
    /// To the host.
    Host(HostInterface),
    /// Nothing to link: the interface only defines value types, which travel
    /// with the functions that use them.
    TypesOnly,
}

/// Routes import `import` of component `importer` under `placement`.
pub fn route(
    app: &App,
    placement: &Placement,
    importer: &str,
    import: &str,
) -> Result<Route, LinkError> {
    let wanted = InterfaceName::parse(import);
    let component = app
        .component(importer)
        .ok_or_else(|| LinkError::UnknownComponent(importer.to_string()))?;

    // 1. An explicit link in the manifest wins.
    let link = component.spec.links.iter().find(|(key, _)| {
        let key = InterfaceName::parse(key);
        key.path == wanted.path && (key.version.is_none() || key.version == wanted.version)
    });
    if let Some((_, target)) = link {
        let export = find_export(app, target, &wanted).ok_or_else(|| LinkError::BadLink {
            component: importer.to_string(),
            import: import.to_string(),
            target: target.clone(),
            target_exports: app
                .component(target)
                .map(|c| c.world.export_list())
                .unwrap_or_default(),
        })?;
        return Ok(place(app, placement, target, export));
    }

    // 2. The host's own interfaces, if the component is granted them.
    if let Some(host) = host_interface(&wanted) {
        if let HostInterface::Member(capability) = host
            && let Some(key) = crate::capabilities::missing_grant(&component.spec, capability)
        {
            return Err(LinkError::NotGranted {
                component: importer.to_string(),
                import: import.to_string(),
                key,
            });
        }
        return Ok(Route::Host(host));
    }

    // 3. Interfaces that only define types need no exporter.
    if component
        .world
        .imports
        .iter()
        .any(|i| i.name == import && i.is_types_only())
    {
        return Ok(Route::TypesOnly);
    }

    // 4. The one component that exports it.
    let exporters: Vec<(&str, String)> = app
        .components
        .keys()
        .filter(|label| label.as_str() != importer)
        .filter_map(|label| find_export(app, label, &wanted).map(|e| (label.as_str(), e)))
        .collect();
    match exporters.as_slice() {
        [] if wanted.package().is_some_and(|p| p.starts_with("wasi:")) => {
            Err(LinkError::UnsupportedHostInterface {
                component: importer.to_string(),
                import: import.to_string(),
            })
        }
        [] => Err(LinkError::Unresolved {
            component: importer.to_string(),
            import: import.to_string(),
            close: close_exports(app, importer, &wanted),
        }),
        [(exporter, export)] => Ok(place(app, placement, exporter, export.clone())),
        many => Err(LinkError::Ambiguous {
            component: importer.to_string(),
            import: import.to_string(),
            exporters: many.iter().map(|(label, _)| label.to_string()).collect(),
        }),
    }
}

/// Whether calls reach `placement`'s components from outside the process:
/// always, except under `_local` (which runs every job) unless calls are
/// forced over HTTP, where the process calls itself.
pub fn called_from_outside(placement: &Placement) -> bool {
    placement.job != LOCAL_JOB || placement.force_remote
}

/// The rpc components of `placement` that other processes call
/// ([`called_from_outside`]): those that need an rpc listener.
pub fn rpc_members_called_from_outside(app: &App, placement: &Placement) -> Vec<String> {
    if !called_from_outside(placement) {
        return Vec::new();
    }
    placement.members_with(app, crate::manifest::BindingType::Rpc)
}

/// The exports of `placement`'s components that components placed in other
/// jobs call (every export when calls are forced over HTTP), by exporter:
/// what this process's rpc listener may serve. Anything else, even an
/// exported interface, is not callable from outside the process.
pub fn served_to_other_jobs(
    app: &App,
    placement: &Placement,
) -> BTreeMap<String, BTreeSet<String>> {
    let mut served: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    if !called_from_outside(placement) {
        return served;
    }
    for (importer, component) in &app.components {
        let importer_placement = if placement.runs(importer) {
            placement.clone()
        } else {
            match Placement::for_job(app, &component.spec.job) {
                Ok(p) => p,
                Err(_) => continue,
            }
        };
        for import in component.world.imports.iter().filter(|i| i.is_interface) {
            if let Ok(Route::Remote {
                exporter, export, ..
            }) = route(app, &importer_placement, importer, &import.name)
                && placement.runs(&exporter)
            {
                served.entry(exporter).or_default().insert(export);
            }
        }
    }
    served
}

/// The jobs whose components `placement`'s components call (routes that
/// leave the process), by name; imports that do not route are skipped
/// (preparing the job reports them).
pub fn jobs_called_by(app: &App, placement: &Placement) -> BTreeSet<String> {
    let mut called = BTreeSet::new();
    for importer in &placement.members {
        let Some(component) = app.component(importer) else {
            continue;
        };
        for import in component.world.imports.iter().filter(|i| i.is_interface) {
            if let Ok(Route::Remote { job, .. }) = route(app, placement, importer, &import.name) {
                called.insert(job);
            }
        }
    }
    called
}

/// Whether the host itself provides `name`.
pub fn host_interface(name: &InterfaceName) -> Option<HostInterface> {
    if let Some(interface) = MemberInterface::of(name) {
        return Some(HostInterface::Member(interface));
    }
    let package = name.package()?;
    HOST_WASI_PACKAGES
        .contains(&package)
        .then_some(HostInterface::Wasi)
}

fn place(app: &App, placement: &Placement, exporter: &str, export: String) -> Route {
    if placement.colocates(exporter) {
        Route::Colocated {
            exporter: exporter.to_string(),
            export,
        }
    } else {
        let job = app
            .component(exporter)
            .map(|c| c.spec.job.clone())
            .unwrap_or_default();
        Route::Remote {
            exporter: exporter.to_string(),
            export,
            job,
        }
    }
}

/// The name under which component `label` exports something satisfying `wanted`.
fn find_export(app: &App, label: &str, wanted: &InterfaceName) -> Option<String> {
    app.component(label)?
        .world
        .exports
        .iter()
        .find(|e| InterfaceName::parse(&e.name).satisfies(wanted))
        .map(|e| e.name.clone())
}

/// Exports of other components whose names resemble `wanted`: the same
/// interface at another version, the same interface name in another package,
/// or a name within a small edit distance.
fn close_exports(app: &App, importer: &str, wanted: &InterfaceName) -> Vec<(String, String)> {
    let mut close = Vec::new();
    for (label, component) in &app.components {
        if label == importer {
            continue;
        }
        for export in &component.world.exports {
            let name = InterfaceName::parse(&export.name);
            let similar = name.path == wanted.path
                || name.interface() == wanted.interface()
                || strsim::normalized_levenshtein(&name.path, &wanted.path) >= 0.75;
            if similar {
                close.push((label.clone(), export.name.clone()));
            }
        }
    }
    close.truncate(5);
    close
}
