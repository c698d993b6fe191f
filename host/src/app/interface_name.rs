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
        match name.split_once('@') {
            Some((path, version)) => InterfaceName {
                path: path.to_string(),
                version: semver::Version::parse(version).ok(),
            },
            None => InterfaceName {
                path: name.to_string(),
                version: None,
            },
        }
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
    }
}
