//! Serving a running job: HTTP-bound components, each on its own listener
//! ([`http`]), `rpc` components to other jobs ([`rpc`]), and workers
//! ([`worker`]); the accept loop they share ([`listener`], [`timed_io`],
//! [`threads`]), what bounds each request ([`body`], [`slots`],
//! [`budget`]), the answers the host makes itself ([`reply`]) and draining
//! on shutdown ([`drain`]), the health and readiness probes ([`admin`]); [`service`] offers the HTTP and rpc paths as
//! tower services for embedding servers, and [`embedder`] serves an
//! embedder's own service (e.g. an axum `Router`) on the job's threads.

pub mod admin;
pub mod body;
pub mod budget;
pub mod drain;
pub mod embedder;
pub mod http;
pub mod listener;
pub mod reply;
pub mod rpc;
pub mod service;
pub mod slots;
pub mod threads;
pub mod timed_io;
pub mod worker;
