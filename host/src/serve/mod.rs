//! Serving a running job to the outside: HTTP-bound components, each on its
//! own listener ([`http`]), and `rpc` components to other jobs ([`rpc`]).

pub mod http;
pub mod rpc;
