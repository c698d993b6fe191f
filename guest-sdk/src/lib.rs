//! The Amimono guest SDK: a thin layer over `wit-bindgen` and `wasip2` for
//! Rust components that run inside an Amimono host.
//!
//! # Writing a component
//!
//! 1. Create a library crate with `crate-type = ["cdylib"]` and depend on
//!    `amimono-sdk` (and on `wit-bindgen` if the component imports or exports
//!    interfaces of its own).
//! 2. For an HTTP component, implement [`http::Handler`] on a type and
//!    register it with [`http_component!`]. For an RPC component, export your
//!    own WIT world with `wit_bindgen::generate!`.
//! 3. Ask the host about the app with the functions in [`runtime`]: the
//!    component's label, the app, the job, the revision, and how the other
//!    components are reached.
//! 4. Build with `cargo build --release --target wasm32-wasip2`: the `.wasm`
//!    file under `target/wasm32-wasip2/release/` is a component the host runs.
//!
//! # Example
//!
//! ```no_run
//! use amimono_sdk::http::{Handler, Request, Response};
//!
//! struct Hello;
//!
//! impl Handler for Hello {
//!     fn handle(request: Request) -> Response {
//!         match request.path() {
//!             "/" => Response::text(200, format!("hello from {}\n", amimono_sdk::runtime::label())),
//!             _ => Response::text(404, "not found\n"),
//!         }
//!     }
//! }
//!
//! amimono_sdk::http_component!(Hello);
//! # fn main() {}
//! ```

pub mod config;
pub mod http;
pub mod kv;
pub mod log;
pub mod runtime;

/// Re-exports used by this crate's macros. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use wasip2;
    pub use wit_bindgen;
}
