//! Linking: deciding where each import goes ([`router`]), planning the graph
//! of colocated components reachable from an entry component ([`plan`]), and
//! composing that graph into one component with wac-graph ([`compose`]), so a
//! colocated call is a direct call inside wasm with no host in between.

pub mod compose;
pub mod plan;
pub mod router;
pub mod rules;

pub use compose::compose;
pub use plan::{GraphPlan, plan_graph};
pub use router::{HostInterface, Route};

use std::fmt;

/// Every link problem of a job, reported together.
#[derive(Debug, Clone, thiserror::Error)]
pub struct LinkErrors(pub Vec<LinkError>);

impl fmt::Display for LinkErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [one] => write!(f, "{one}"),
            many => {
                write!(f, "{} link problems:", many.len())?;
                for e in many {
                    write!(f, "\n  - {e}")?;
                }
                Ok(())
            }
        }
    }
}

/// Why a job's components cannot be linked. Every message names the
/// components and the import at fault and says how to fix it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// No component of the app exports what a component imports.
    #[error(
        "component `{component}` imports `{import}`, but no component of the app exports it{}",
        suggest(close)
    )]
    Unresolved {
        /// The importing component.
        component: String,
        /// The import's name.
        import: String,
        /// Components that export something with a similar name: (label, export).
        close: Vec<(String, String)>,
    },
    /// Several components export the import and no link says which one to use.
    #[error(
        "component `{component}` imports `{import}`, which several components export: {}; choose one in the manifest with `[components.{component}.links]` `\"{}\" = \"{}\"`",
        exporters.iter().map(|e| format!("`{e}`")).collect::<Vec<_>>().join(", "),
        crate::app::InterfaceName::unversioned(import),
        exporters.first().map(String::as_str).unwrap_or_default()
    )]
    Ambiguous {
        /// The importing component.
        component: String,
        /// The import's name.
        import: String,
        /// The components that export it.
        exporters: Vec<String>,
    },
    /// A manifest link points at a component that does not export the import.
    #[error(
        "component `{component}` links `{import}` to `{target}`, but `{target}` does not export it (it exports: {target_exports})"
    )]
    BadLink {
        /// The importing component.
        component: String,
        /// The import's name.
        import: String,
        /// The link's target.
        target: String,
        /// What the target does export.
        target_exports: String,
    },
    /// Importer and exporter disagree on the interface's types.
    #[error(
        "component `{component}` imports `{import}` from `{exporter}`, but their WIT differ: {detail}"
    )]
    WitMismatch {
        /// The importing component.
        component: String,
        /// The import's name.
        import: String,
        /// The exporting component.
        exporter: String,
        /// What differs, as the type checker says it.
        detail: String,
    },
    /// A WASI interface the host does not implement.
    #[error(
        "component `{component}` imports `{import}`, which this host does not provide (it provides {} and `amimono:runtime/context`)",
        router::HOST_WASI_PACKAGES.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(", ")
    )]
    UnsupportedHostInterface {
        /// The importing component.
        component: String,
        /// The import's name.
        import: String,
    },
    /// A component imports a capability the manifest does not grant it.
    #[error(
        "component `{component}` imports `{import}`, which the manifest does not grant it: add {key}"
    )]
    NotGranted {
        /// The importing component.
        component: String,
        /// The import's name.
        import: String,
        /// The manifest key that would grant it.
        key: String,
    },
    /// Members of one graph import shared WASI with different grants.
    #[error(
        "components `{first}` and `{second}` share one `{interface}` in the graph of `{root}`, but the manifest grants them different `{key}`: give them the same `{key}`, or place them in different jobs"
    )]
    UnsharedGrant {
        /// The shared WASI package.
        interface: &'static str,
        /// The manifest key.
        key: &'static str,
        /// One member.
        first: String,
        /// Another member with other grants.
        second: String,
        /// The graph's entry.
        root: String,
    },
    /// Colocated components import each other in a cycle.
    #[error(
        "components import each other in a cycle: {}; the components of a job must form an acyclic graph",
        cycle.join(" → ")
    )]
    Cycle {
        /// The labels around the cycle, first repeated at the end.
        cycle: Vec<String>,
    },
    /// An interface that cannot cross processes is split across jobs.
    #[error(transparent)]
    NotSplittable(Box<SplitRefusal>),
    /// A label that the app does not define.
    #[error("the app has no component `{0}`")]
    UnknownComponent(String),
    /// wac-graph failed to build or encode the composition.
    #[error("composing the graph of `{root}` failed: {detail}")]
    Compose {
        /// The entry component.
        root: String,
        /// What went wrong.
        detail: String,
    },
}

/// An interface whose functions take or return resources, streams or
/// futures, imported from a component in another job.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "component `{component}` (job `{job}`) imports `{import}` from `{exporter}` (job `{exporter_job}`), but function `{function}` of that interface takes or returns {reason}, which cannot cross processes: the interface cannot be split across jobs; place both components in one job"
)]
pub struct SplitRefusal {
    /// The importing component.
    pub component: String,
    /// The importer's job.
    pub job: String,
    /// The import's name.
    pub import: String,
    /// The first function that cannot cross.
    pub function: String,
    /// What it takes or returns (`a resource`, `a stream`, …).
    pub reason: String,
    /// The exporting component.
    pub exporter: String,
    /// The exporter's job.
    pub exporter_job: String,
}

fn suggest(close: &[(String, String)]) -> String {
    if close.is_empty() {
        "; add a component that exports it to the manifest, or link it to one".to_string()
    } else {
        format!(
            "; components that export something close: {}",
            close
                .iter()
                .map(|(label, export)| format!("`{label}` exports `{export}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

#[cfg(test)]
mod tests;
