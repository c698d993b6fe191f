//! The guest component crates of the workspace: every package under
//! `examples/` or `tests/fixtures/`, found with `cargo metadata`.

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
        .filter_map(|p| p["name"].as_str().map(str::to_string))
        .collect();
    names.sort();
    Ok(names)
}
