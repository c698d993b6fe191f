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
//! or [`Job::serve`] for everything on listeners (what `amimono run` does).
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
//! # Inside
//!
//! The lifecycle, one module per stage:
//! 1. [`manifest`]: `amimono.toml` parsed and checked (errors with file:line:column).
//! 2. [`app`]: components loaded, their worlds read, the revision computed.
//! 3. [`placement`]: which components this process runs (`AMIMONO_JOB`).
//! 4. [`link`]: every import routed ([`link::router`], the one local-vs-remote
//!    decision), each entry component's graph planned and composed (wac-graph).
//! 5. [`job`]: graphs compiled ([`engine`], [`artifact_cache`]) and pre-instantiated
//!    with the host's interfaces ([`host_state`], [`capabilities`]); the [`Job`] seam.
//! 6. [`run`] and [`serve`]: listeners bound ([`bindings_file`]) and requests served
//!    on one single-threaded runtime per core ([`serve::threads`]);
//!    [`invoke`] calls one function for `amimono call`; [`config_json`] prints `_config`.

pub mod app;
pub mod application;
pub mod artifact_cache;
pub mod bindings_file;
pub mod bundle;
pub mod capabilities;
pub mod cli;
pub mod config_json;
pub mod engine;
pub mod host_state;
pub mod inspect;
pub mod invoke;
pub mod job;
pub mod launcher;
pub mod limits;
pub mod link;
pub mod manifest;
pub mod placement;
pub mod remote;
pub mod run;
pub mod serve;
pub mod uptime;
pub mod warm;
pub mod wasmtime_error;

pub use application::Application;
pub use bindings_file::Bindings;
pub use capabilities::config::SecretSource;
pub use job::{
    CallError, Callee, Job, JobBuilder, LinkErrors, Listeners, Stopped, TypedCall, TypedInstance,
    Workers,
};
pub use remote::auth::ClusterKey;
pub use serve::service::{HttpService, RpcService};
