//! Amimono's host: runs a job of a modular-monolith app — a set of WebAssembly
//! components — in one process, composing colocated components into one graph
//! so their calls stay inside wasm.
//!
//! # Embedding a job
//!
//! The library API is small: open an [`Application`] (an app directory or a
//! bundle), prepare one of its jobs with a [`JobBuilder`], then use the
//! [`Job`]: a tower [`HttpService`] per HTTP component, an [`RpcService`] for
//! calls from other jobs, native calls ([`Job::call`], [`Job::typed_call`]),
//! or [`Job::serve`] for everything on listeners (what `amimono run` does),
//! your own tower service included ([`Listeners::service`]: an axum
//! `Router` nesting the HTTP services, served on the job's per-core threads
//! with the app's connection limits and drained with the job).
//!
//! ```no_run
//! use amimono::{Application, Listeners};
//!
//! # async fn example() -> anyhow::Result<()> {
//! let app = Application::open("examples/hello")?;
//! println!("{} at revision {}, jobs {:?}", app.name(), app.revision(), app.jobs());
//! let job = app.local().prepare().await?;
//!
//! // A tower service: mount it in axum with `Router::nest_service`, or serve
//! // it with hyper through `hyper_util::service::TowerToHyperService`.
//! let frontend = job.http_service("frontend")?;
//! # drop(frontend);
//!
//! // A native caller, colocated: no HTTP, a fresh instance per call.
//! let languages = job
//!     .typed_call::<(), (Vec<String>,)>("greeter", "languages")
//!     .await?;
//! let (languages,) = languages.call(()).await?;
//! println!("the greeter speaks {languages:?}");
//!
//! // Or run everything the job has until Ctrl-C, then drain.
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let stopped = job
//!     .serve(Listeners::new().http("frontend", listener), async {
//!         let _ = tokio::signal::ctrl_c().await;
//!     })
//!     .await?;
//! println!("{stopped:?}");
//! # Ok(())
//! # }
//! ```
//!
//! `docs/embedding.md` walks through axum and plain hyper and says which
//! guarantees hold when embedded.
//!
//! # Errors callers match on
//!
//! Errors are `anyhow::Error`s with context; the causes worth matching on
//! are typed (downcast with `anyhow::Error::downcast_ref`): [`ManifestError`]
//! and [`UnknownLayout`] (the manifest), [`AppLoadErrors`] (components that
//! do not load), [`UnknownJob`], [`BindingsError`] (the bindings file, a
//! revision pin that does not match), [`LinkErrors`] (every link problem of
//! a job, each a [`LinkError`], a split that cannot be made a
//! [`SplitRefusal`]), [`CapabilityError`] (a missing secret, a granted
//! directory that cannot be opened), [`KeyError`] (the cluster key),
//! [`RemoteCallError`] (a call to another job) and [`CallError`] (a native
//! call).
//!
//! # Inside
//!
//! Everything else is private to the crate; `ARCHITECTURE.md` maps the
//! modules: the manifest is parsed and checked (`manifest`), components
//! loaded (`app`), placed (`placement`), every import routed and each graph
//! composed (`link`, with `link::router` the one local-vs-remote decision),
//! compiled and pre-instantiated with the host's capabilities (`job`,
//! `engine`, `capabilities`), and served (`serve`, `run`).

mod app;
mod application;
mod artifact_cache;
mod bindings_file;
mod bundle;
mod capabilities;
mod cli;
mod config_json;
mod dashboard;
mod deploy;
mod engine;
mod host_state;
mod inspect;
mod invoke;
mod job;
mod launcher;
mod limits;
mod link;
mod manifest;
mod observe;
mod placement;
mod probe;
mod remote;
mod run;
mod serve;
mod uptime;
mod warm;
mod wasmtime_error;

pub use app::AppLoadErrors;
pub use application::Application;
pub use bindings_file::{Address, Bindings, BindingsError, PerReplica};
pub use capabilities::CapabilityError;
pub use capabilities::config::SecretSource;
pub use host_state::HostState;
pub use job::{
    CallError, Callee, Job, JobBuilder, LinkErrors, Listeners, Stopped, TypedCall, TypedInstance,
    Workers,
};
pub use link::{LinkError, SplitRefusal};
pub use manifest::{ManifestError, UnknownLayout};
pub use placement::UnknownJob;
pub use remote::auth::{ClusterKey, KeyError};
pub use remote::client::RemoteCallError;
pub use serve::service::{HttpService, RpcService};

/// Internals for the benchmark suite (`bench/`), the fuzz targets (`fuzz/`)
/// and the `amimono` binary: not part of the API, no stability promised.
#[doc(hidden)]
pub mod internals {
    pub use crate::app::{App, ItemShape, WorldShape};
    pub use crate::bindings_file::Bindings;
    pub use crate::capabilities::runtime::RuntimeFacts;
    pub use crate::capabilities::{JobCapabilities, JobSetup};
    pub use crate::cli::{Cli, execute};
    pub use crate::engine::{EPOCH_TICK, EngineUse, new_engine};
    pub use crate::host_state::{HostState, StoreSettings, new_store};
    pub use crate::job::{LinkContext, compose_graph, prepare_graph};
    pub use crate::manifest::Manifest;
    pub use crate::observe::logs::{JsonLines, LogFormat};
    pub use crate::observe::metrics::{JobIdentity, Metrics};
    pub use crate::observe::tapped::TappedGraph;
    pub use crate::placement::Placement;
    pub use crate::remote::{auth, client, codec, protocol};
    pub use crate::uptime::mark_start;
    pub use crate::wasmtime_error::IntoAnyhow;

    /// The tapped graph of entry `label` of `job`, when the job samples
    /// colocated calls (PF1 measures a call through it).
    pub fn tapped_graph(
        job: &crate::Job,
        label: &str,
    ) -> Option<std::sync::Arc<crate::observe::tapped::TappedGraph>> {
        job.tapped(label).map(|(_, graph)| graph)
    }
}
