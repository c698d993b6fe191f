//! Calls between jobs. A component's import whose exporter runs in another
//! job is bound to a stub ([`stub`]) that sends the call with the
//! [`client`] over HTTP to one of the callee's [`endpoints`], values encoded by [`codec`] (wRPC's value encoding),
//! per the [`protocol`] (`docs/protocol.md`), signed and checked by [`auth`]
//! under the deployment's cluster key. The serving side is `serve/rpc.rs`.

pub mod auth;
pub mod client;
pub mod codec;
pub mod endpoints;
pub mod protocol;
pub mod resilience;
pub mod stub;
