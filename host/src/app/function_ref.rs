//! `interface#function` references to exported functions: the one parser of
//! that syntax, used by native calls (`Job::call`, `amimono call`), the
//! manifest's `idempotent` lists and the remote stubs.

use super::InterfaceName;

/// A resolved function: the interface export holding it (or `None` for a
/// function exported at the top level) and the function's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionRef {
    /// The exported interface.
    pub interface: Option<String>,
    /// The function name.
    pub function: String,
}

impl FunctionRef {
    /// Parses `interface#function` (or a bare `function`): the one place
    /// this syntax is read.
    pub fn parse(spec: &str) -> (Option<&str>, &str) {
        match spec.rsplit_once('#') {
            Some((interface, function)) => (Some(interface), function),
            None => (None, spec),
        }
    }

    /// Whether `spec` (`function` or `interface#function`, as a manifest's
    /// `idempotent` list writes it) names the function `function` of the
    /// interface exported as `export`: a bare name names that function of
    /// any interface; an interface is written in full or without its version.
    pub fn refers_to(spec: &str, export: &str, function: &str) -> bool {
        match FunctionRef::parse(spec) {
            (Some(interface), name) => name == function && InterfaceName::names(export, interface),
            (None, name) => name == function,
        }
    }

    /// `interface#function`, or `function`.
    pub fn qualified(&self) -> String {
        match &self.interface {
            Some(interface) => format!("{interface}#{}", self.function),
            None => self.function.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::FunctionRef;

    #[test]
    fn parses_interface_and_function() {
        assert_eq!(
            FunctionRef::parse("hello:app/greeter@0.1.0#hello"),
            (Some("hello:app/greeter@0.1.0"), "hello")
        );
        assert_eq!(FunctionRef::parse("hello"), (None, "hello"));
        assert_eq!(FunctionRef::parse("a#b#c"), (Some("a#b"), "c"));
        assert_eq!(FunctionRef::parse("greeter#"), (Some("greeter"), ""));
    }

    #[test]
    fn refers_to_a_function_of_an_export() {
        let hello = |spec| FunctionRef::refers_to(spec, "hello:app/greeter@0.1.0", "hello");
        assert!(hello("hello"));
        assert!(hello("hello:app/greeter#hello"));
        assert!(hello("hello:app/greeter@0.1.0#hello"));
        assert!(!hello("hello:app/greeter#bye"));
        assert!(!hello("hello:app/other#hello"));
        assert!(!hello("hello:app/greeter@0.2.0#hello"));
        assert!(!hello("greeter#hello"));
        assert!(!hello("bye"));
    }

    #[test]
    fn qualified_writes_what_parse_reads() {
        let with = FunctionRef {
            interface: Some("a:b/c@1.0.0".to_string()),
            function: "f".to_string(),
        };
        assert_eq!(with.qualified(), "a:b/c@1.0.0#f");
        assert_eq!(
            FunctionRef::parse(&with.qualified()),
            (Some("a:b/c@1.0.0"), "f")
        );
        let bare = FunctionRef {
            interface: None,
            function: "f".to_string(),
        };
        assert_eq!(bare.qualified(), "f");
    }
}
