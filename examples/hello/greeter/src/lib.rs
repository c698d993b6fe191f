//! The greeter of the hello example: validates names and builds greetings
//! from the phrasebook's templates. Exports `hello:app/greeter@0.1.0`,
//! imports `hello:app/phrasebook@0.1.0`.

mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "hello:app/greeter-world",
        additional_derives: [PartialEq, Eq],
    });
}

use bindings::exports::hello::app::greeter::Guest;
use bindings::hello::app::phrasebook;
use bindings::hello::app::types::{GreetError, Greeting};

/// The longest name accepted, in characters.
const MAX_NAME_CHARS: usize = 64;

/// Checks `name` and returns it trimmed.
fn validate(name: &str) -> Result<&str, GreetError> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err(GreetError::EmptyName);
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ' ');
    if trimmed.chars().count() > MAX_NAME_CHARS || !trimmed.chars().all(allowed) {
        return Err(GreetError::InvalidName(name.to_string()));
    }
    Ok(trimmed)
}

fn greet_in(name: &str, language: Option<String>) -> Result<Greeting, GreetError> {
    let name = validate(name)?;
    let entry = phrasebook::phrase(language.as_deref())
        .ok_or_else(|| GreetError::UnknownLanguage(language.unwrap_or_default()))?;
    Ok(Greeting {
        name: name.to_string(),
        message: entry.template.replace("{name}", name),
        language: entry.language,
    })
}

struct Greeter;

impl Guest for Greeter {
    fn greet(name: String) -> Result<Greeting, GreetError> {
        greet_in(&name, None)
    }

    fn greet_in(name: String, language: Option<String>) -> Result<Greeting, GreetError> {
        greet_in(&name, language)
    }

    fn greet_all(names: Vec<String>) -> Vec<Result<Greeting, GreetError>> {
        names.iter().map(|name| greet_in(name, None)).collect()
    }

    fn languages() -> Vec<String> {
        phrasebook::languages()
    }
}

// Exported only when building the component: native linkers reject the
// export symbol names (`pkg:name/iface@version#func`). Natively, the
// constant keeps the implementation "used" (no dead-code warnings).
#[cfg(target_arch = "wasm32")]
bindings::export!(Greeter with_types_in bindings);
#[cfg(not(target_arch = "wasm32"))]
const _: Greeter = Greeter;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        assert_eq!(validate("  world "), Ok("world"));
        assert_eq!(validate("Jean-Luc P. d_2"), Ok("Jean-Luc P. d_2"));
        assert_eq!(validate("   "), Err(GreetError::EmptyName));
        assert_eq!(
            validate("a/b"),
            Err(GreetError::InvalidName("a/b".to_string()))
        );
        assert_eq!(
            validate("Zoë"),
            Err(GreetError::InvalidName("Zoë".to_string()))
        );
        assert!(validate(&"x".repeat(64)).is_ok());
        assert!(validate(&"x".repeat(65)).is_err());
    }
}
