//! Serving a running job: HTTP-bound components, each on its own listener
//! ([`http`]), `rpc` components to other jobs ([`rpc`]), and workers
//! ([`worker`]).

pub mod http;
pub mod listener;
pub mod rpc;
pub mod threads;
pub mod worker;
