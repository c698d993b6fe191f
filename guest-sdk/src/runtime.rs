//! What a component can learn about itself and its app from the host.
//!
//! These functions call the host's `amimono:runtime/context@0.1.0`
//! interface (see `wit/runtime.wit`). They work the same whether the other
//! components of the app run in this process or in another job.

use std::fmt;

/// Bindings generated from the project's `wit/runtime.wit`. Not a public
/// API: use the wrappers in [`crate::runtime`].
#[doc(hidden)]
pub mod wit {
    wit_bindgen::generate!({
        path: "../wit",
        world: "amimono:runtime/guest",
    });
}

use wit::amimono::runtime::context;

/// How a component is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BindingType {
    /// It serves `wasi:http/incoming-handler`.
    Http,
    /// It exports interfaces that other components import.
    Rpc,
    /// It is a worker: nothing reaches it from outside.
    None,
}

impl BindingType {
    /// The name used in manifests and in JSON: `http`, `rpc` or `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            BindingType::Http => "http",
            BindingType::Rpc => "rpc",
            BindingType::None => "none",
        }
    }
}

impl fmt::Display for BindingType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<context::BindingType> for BindingType {
    fn from(kind: context::BindingType) -> Self {
        match kind {
            context::BindingType::Http => BindingType::Http,
            context::BindingType::Rpc => BindingType::Rpc,
            context::BindingType::None => BindingType::None,
        }
    }
}

/// Where and how a component of the app is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The component's binding type.
    pub kind: BindingType,
    /// The job the component is placed in.
    pub job: String,
    /// The base URL others reach it at (e.g. `http://127.0.0.1:8080`), when
    /// the host knows it.
    pub url: Option<String>,
}

impl From<context::BindingInfo> for Binding {
    fn from(binding: context::BindingInfo) -> Self {
        Binding {
            kind: binding.type_.into(),
            job: binding.job,
            url: binding.url,
        }
    }
}

/// The label of the calling component, unique in its app.
pub fn label() -> String {
    context::label()
}

/// The name of the app (from its manifest).
pub fn app() -> String {
    context::app()
}

/// The job this host runs (`_local` when every job runs in one process).
pub fn job() -> String {
    context::job()
}

/// The content-hash revision of the app.
pub fn revision() -> String {
    context::revision()
}

/// The binding of the component with this label, or `None` if the app has no
/// component with that label.
pub fn binding(label: &str) -> Option<Binding> {
    context::binding(label).map(Binding::from)
}
