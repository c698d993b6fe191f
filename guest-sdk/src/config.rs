//! The component's configuration and secrets, through the standard
//! `wasi:config/store` interface: values from the manifest's
//! `config = { … }`, secrets named in `secrets = [ … ]` and supplied at run
//! time. A component that imports this must be granted one of them.

#[doc(hidden)]
pub mod wit {
    wit_bindgen::generate!({
        path: "../wit",
        world: "amimono:runtime/config-guest",
        generate_all,
    });
}

use wit::wasi::config::store;

/// The value of configuration key `key`, if set.
pub fn get(key: &str) -> Option<String> {
    store::get(key).ok().flatten()
}

/// Every configuration key and value.
pub fn all() -> Vec<(String, String)> {
    store::get_all().unwrap_or_default()
}
