//! A job prepared and run: the seam between the host's machinery and
//! whatever runs it (`amimono run`, an embedding server, a test, the
//! benchmarks).
//!
//! - [`builder`]: [`JobBuilder`] takes what the process knows (bindings,
//!   URLs, data directory, secrets, cluster key, engine) and prepares the job.
//! - [`graphs`]: each entry component's graph composed (or taken from
//!   precompiled graphs through [`GraphLookup`], which a bundle implements),
//!   compiled and pre-instantiated; [`linker`] is the linker each one gets.
//! - [`prepared`]: [`Job`], which hands out tower services
//!   ([`crate::HttpService`], [`crate::RpcService`]); [`native`] calls its
//!   components from Rust; [`serving`] runs everything on listeners.

pub mod builder;
pub mod graphs;
pub mod linker;
pub mod native;
pub mod prepared;
pub mod serving;

pub use crate::link::LinkErrors;
pub use builder::JobBuilder;
pub use graphs::{GraphLookup, PrecompiledGraph, compose_graph, compose_job, prepare_graph};
pub use linker::LinkContext;
pub use native::{CallError, Callee, TypedCall, TypedInstance};
pub use prepared::Job;
pub use serving::{Listeners, Stopped, Workers};
