//! The phrasebook of the hello example: greeting templates by language.
//! Exports `hello:app/phrasebook@0.1.0`.

mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "hello:app/phrasebook-world",
    });
}

use bindings::exports::hello::app::phrasebook::{Guest, PhraseEntry};

/// Known phrases, sorted by language.
const PHRASES: &[(&str, &str)] = &[
    ("de", "Hallo, {name}!"),
    ("en", "Hello, {name}!"),
    ("es", "¡Hola, {name}!"),
    ("fr", "Bonjour, {name} !"),
];

/// The language of `phrase(none)`.
const DEFAULT_LANGUAGE: &str = "en";

struct Phrasebook;

impl Guest for Phrasebook {
    fn phrase(language: Option<String>) -> Option<PhraseEntry> {
        let wanted = language.as_deref().unwrap_or(DEFAULT_LANGUAGE);
        PHRASES
            .iter()
            .find(|(language, _)| *language == wanted)
            .map(|(language, template)| PhraseEntry {
                language: (*language).to_string(),
                template: (*template).to_string(),
            })
    }

    fn languages() -> Vec<String> {
        PHRASES
            .iter()
            .map(|(language, _)| (*language).to_string())
            .collect()
    }
}

// Exported only when building the component: native linkers reject the
// export symbol names (`pkg:name/iface@version#func`). Natively, the
// constant keeps the implementation "used" (no dead-code warnings).
#[cfg(target_arch = "wasm32")]
bindings::export!(Phrasebook with_types_in bindings);
#[cfg(not(target_arch = "wasm32"))]
const _: Phrasebook = Phrasebook;
