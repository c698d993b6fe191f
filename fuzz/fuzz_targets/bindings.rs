//! The bindings-file parser (`AMIMONO_BINDINGS`), checked against a small
//! app with one component of each binding type: any text either parses or
//! fails with diagnostics that render — never a panic. A file that parses
//! names only the app's components, each with an address.

#![no_main]

use std::path::Path;

use amimono::Bindings;
use amimono_fuzz::fuzz_target;
use amimono_fuzz::{bindings_app, debug};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let app = bindings_app();
    let parsed = Bindings::parse(Path::new("fuzz/bindings.toml"), text, app);
    debug(|| {
        parsed
            .as_ref()
            .map(|b| &b.components)
            .map_err(ToString::to_string)
    });
    match parsed {
        Ok(bindings) => {
            for (label, address) in &bindings.components {
                assert!(
                    app.component(label).is_some(),
                    "unknown component `{label}` accepted"
                );
                for url in address.urls() {
                    assert!(
                        url.starts_with("http://") || url.starts_with("https://"),
                        "external address `{url}` accepted"
                    );
                }
                // A list has one entry per replica of the component's job.
                let replicas = app
                    .component(label)
                    .and_then(|c| app.manifest.jobs.get(&c.spec.job))
                    .map_or(1, |job| job.replicas as usize);
                for count in [address.internal.values().len(), address.urls().len()] {
                    assert!(count == 1 || count == replicas, "{count} entries accepted");
                }
            }
            for label in app.components.keys() {
                let _ = bindings.require(app, label).map_err(|e| e.to_string());
            }
            let _ = bindings
                .check_revision(&app.revision)
                .map_err(|e| e.to_string());
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
