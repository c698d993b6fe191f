//! Serving a running job to the outside: HTTP-bound components, each on its
//! own listener.

pub mod http;
