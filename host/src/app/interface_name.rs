//! Interface names as the component model spells them
//! (`namespace:package/interface@version`) and when two of them match.

use std::fmt;

/// A parsed import or export name. Names that are not interface names (plain
/// kebab names) keep only `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceName {
    /// `namespace:package/interface`, or the whole name for plain names.
    pub path: String,
    /// The version after `@`, if any and if it parses.
    pub version: Option<semver::Version>,
}

impl InterfaceName {
    /// Parses `name`.
    pub fn parse(name: &str) -> InterfaceName {
        let (path, version) = split(name);
        InterfaceName {
            path: path.to_string(),
            version: version.and_then(|v| semver::Version::parse(v).ok()),
        }
    }

    /// `name` without its `@version`: the path, read without allocating.
    pub fn unversioned(name: &str) -> &str {
        split(name).0
    }

    /// Whether `reference` (as written in a manifest or on a command line)
    /// names the export `export`: in full, or without its version.
    pub fn names(export: &str, reference: &str) -> bool {
        reference == export || reference == InterfaceName::unversioned(export)
    }

    /// The `namespace:package` part, if this is an interface name.
    pub fn package(&self) -> Option<&str> {
        self.path.split_once('/').map(|(package, _)| package)
    }

    /// The interface part after `/`, or the whole path.
    pub fn interface(&self) -> &str {
        self.path
            .split_once('/')
            .map_or(self.path.as_str(), |(_, iface)| iface)
    }

    /// Whether an export named `self` can satisfy an import named `import`:
    /// the same path, and versions that are semver-compatible (same major, and
    /// for 0.x the same minor) when both are given.
    pub fn satisfies(&self, import: &InterfaceName) -> bool {
        if self.path != import.path {
            return false;
        }
        match (&self.version, &import.version) {
            (Some(a), Some(b)) => {
                if a.major != b.major {
                    false
                } else if a.major == 0 {
                    a.minor == b.minor && (a.minor != 0 || a.patch == b.patch)
                } else {
                    true
                }
            }
            _ => true,
        }
    }
}

/// `name` split at its `@`: the one place the version is cut off.
fn split(name: &str) -> (&str, Option<&str>) {
    match name.split_once('@') {
        Some((path, version)) => (path, Some(version)),
        None => (name, None),
    }
}

impl fmt::Display for InterfaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.version {
            Some(v) => write!(f, "{}@{v}", self.path),
            None => f.write_str(&self.path),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::InterfaceName;

    fn satisfies(export: &str, import: &str) -> bool {
        InterfaceName::parse(export).satisfies(&InterfaceName::parse(import))
    }

    #[test]
    fn versions_match_semver_compatibly() {
        assert!(satisfies("a:b/c@0.1.0", "a:b/c@0.1.0"));
        assert!(satisfies("a:b/c@0.1.3", "a:b/c@0.1.0"));
        assert!(!satisfies("a:b/c@0.2.0", "a:b/c@0.1.0"));
        assert!(!satisfies("a:b/c@0.0.2", "a:b/c@0.0.1"));
        assert!(satisfies("a:b/c@1.4.0", "a:b/c@1.0.0"));
        assert!(!satisfies("a:b/c@2.0.0", "a:b/c@1.0.0"));
        assert!(satisfies("a:b/c", "a:b/c@1.0.0"));
        assert!(!satisfies("a:b/d@0.1.0", "a:b/c@0.1.0"));
    }

    #[test]
    fn parts() {
        let name = InterfaceName::parse("hello:app/greeter@0.1.0");
        assert_eq!(name.package(), Some("hello:app"));
        assert_eq!(name.interface(), "greeter");
        assert_eq!(name.to_string(), "hello:app/greeter@0.1.0");
        let plain = InterfaceName::parse("greet");
        assert_eq!((plain.package(), plain.interface()), (None, "greet"));
        assert_eq!(plain.version, None);
    }

    #[test]
    fn unversioned_cuts_at_the_version() {
        assert_eq!(InterfaceName::unversioned("a:b/c@0.1.0"), "a:b/c");
        assert_eq!(InterfaceName::unversioned("a:b/c"), "a:b/c");
        assert_eq!(InterfaceName::unversioned("greet"), "greet");
        assert_eq!(InterfaceName::unversioned("a:b/c@not-semver"), "a:b/c");
        assert_eq!(InterfaceName::unversioned(""), "");
    }

    #[test]
    fn a_reference_names_an_export_in_full_or_without_version() {
        assert!(InterfaceName::names("a:b/c@0.1.0", "a:b/c@0.1.0"));
        assert!(InterfaceName::names("a:b/c@0.1.0", "a:b/c"));
        assert!(InterfaceName::names("a:b/c", "a:b/c"));
        assert!(!InterfaceName::names("a:b/c@0.1.0", "a:b/c@0.2.0"));
        assert!(!InterfaceName::names("a:b/c@0.1.0", "c"));
        assert!(!InterfaceName::names("a:b/c", "a:b/c@0.1.0"));
        assert!(!InterfaceName::names("a:b/cd", "a:b/c"));
    }
}
