//! The manifest parser: any text either parses into a checked manifest or
//! fails with diagnostics that render (line, column, caret) — never a
//! panic. A manifest that parses must also switch to each of its layouts.

#![no_main]

use std::path::Path;

use amimono::internals::Manifest;
use amimono_fuzz::debug;
use amimono_fuzz::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = Manifest::parse(Path::new("fuzz/amimono.toml"), text.to_string());
    debug(|| parsed.as_ref().map(|m| &m.app).map_err(ToString::to_string));
    match parsed {
        Ok(manifest) => {
            let layouts: Vec<String> = manifest.layouts.keys().cloned().collect();
            for layout in layouts {
                let mut switched = manifest.clone();
                if let Err(e) = switched.select_layout(&layout) {
                    panic!("layout `{layout}` is listed but cannot be selected: {e}");
                }
            }
            let _ = manifest.job_names();
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
