//! The guest component crates of the workspace: every package under
//! `examples/` or `tests/fixtures/`, found with `cargo metadata`, except
//! native ones (`[package.metadata.amimono] native = true`, e.g. the
//! embedding example, which is a host-side program).

use crate::cmd::Cmd;
use std::path::Path;

/// The target guests build for.
pub const TARGET: &str = "wasm32-wasip2";

/// Names of the guest packages, sorted.
pub fn packages(root: &Path) -> Result<Vec<String>, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let text = Cmd::new(cargo)
        .dir(root)
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .output()?;
    let metadata: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("parsing cargo metadata: {e}"))?;
    let examples = root.join("examples");
    let fixtures = root.join("tests").join("fixtures");
    let mut names: Vec<String> = metadata["packages"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|p| {
            let manifest = Path::new(p["manifest_path"].as_str().unwrap_or_default());
            manifest.starts_with(&examples) || manifest.starts_with(&fixtures)
        })
        .filter(|p| p["metadata"]["amimono"]["native"].as_bool() != Some(true))
        .filter_map(|p| p["name"].as_str().map(str::to_string))
        .collect();
    names.sort();
    Ok(names)
}

/// The `build` commands of example components that are not cargo builds
/// (e.g. componentize-py), with the directory to run each in.
pub fn other_builds(root: &Path) -> Result<Vec<(std::path::PathBuf, String)>, String> {
    let mut builds = Vec::new();
    let examples = root.join("examples");
    let entries =
        std::fs::read_dir(&examples).map_err(|e| format!("reading {}: {e}", examples.display()))?;
    let mut dirs: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    dirs.sort();
    for dir in dirs {
        let manifest = dir.join("amimono.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        let value: toml::Value =
            toml::from_str(&text).map_err(|e| format!("parsing {}: {e}", manifest.display()))?;
        let components = value.get("components").and_then(|c| c.as_table());
        for component in components.into_iter().flat_map(|c| c.values()) {
            if let Some(command) = component.get("build").and_then(|b| b.as_str())
                && !command.starts_with("cargo ")
            {
                builds.push((dir.clone(), command.to_string()));
            }
        }
    }
    Ok(builds)
}
