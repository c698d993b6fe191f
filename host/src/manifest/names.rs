//! The naming rule shared by labels, job and app names: the component model's
//! kebab-case, so a label can also name a wasm import.

/// What a valid name looks like, for error messages.
pub const KEBAB_RULE: &str = "expected kebab-case: lowercase words of letters and digits, each starting with a letter, joined by single `-` (e.g. `cart-service`)";

/// Whether `name` is kebab-case as the component model defines it (lowercase).
pub fn is_kebab_name(name: &str) -> bool {
    !name.is_empty()
        && name.split('-').all(|word| {
            let mut chars = word.chars();
            matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
                && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
}

#[cfg(test)]
mod tests {
    use super::is_kebab_name;

    #[test]
    fn kebab_names() {
        for ok in ["a", "frontend", "cart-service", "svc2", "a-b2-c"] {
            assert!(is_kebab_name(ok), "{ok}");
        }
        for bad in [
            "", "Front", "a--b", "-a", "a-", "2svc", "a-2", "a_b", "_local",
        ] {
            assert!(!is_kebab_name(bad), "{bad}");
        }
    }
}
