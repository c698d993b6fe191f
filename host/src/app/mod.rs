//! A loaded app: the checked manifest, each component's bytes and the shape
//! of its world (imports and exports), and the app's content-hash revision.
//! This is the "resolved" stage of the lifecycle: everything after it works on
//! an [`App`], never on files.

mod function_ref;
mod interface_name;
mod revision;
mod world;

pub use function_ref::FunctionRef;
pub use interface_name::InterfaceName;
pub use world::{ItemShape, WorldShape};

use crate::manifest::{BindingType, ComponentSpec, Manifest, ManifestError, UnknownLayout};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why an app could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// The manifest is missing or invalid.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// A component's `.wasm` file does not exist.
    #[error("{diagnostic}\n{hint}")]
    MissingWasm {
        /// The component's label.
        label: String,
        /// The path that was tried.
        path: PathBuf,
        /// Where the manifest names the file.
        diagnostic: Box<crate::manifest::Diagnostic>,
        /// How to build the file.
        hint: String,
    },
    /// A component's file could not be read or is not a component.
    #[error("{diagnostic}")]
    BadWasm {
        /// The component's label.
        label: String,
        /// Where the manifest names the file, and what is wrong with it.
        diagnostic: Box<crate::manifest::Diagnostic>,
    },
    /// The manifest names a function (e.g. in `idempotent`) that the
    /// component does not export.
    #[error("{diagnostic}")]
    UnknownFunction {
        /// The component's label.
        label: String,
        /// Where the manifest declares the component, and the problem.
        diagnostic: Box<crate::manifest::Diagnostic>,
    },
    /// A component's binding does not match what it exports.
    #[error("{diagnostic}")]
    BindingMismatch {
        /// The component's label.
        label: String,
        /// Where the manifest declares the component, and the problem.
        diagnostic: Box<crate::manifest::Diagnostic>,
    },
}

/// Every problem found while loading an app, reported together.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n\n"))]
pub struct AppLoadErrors(pub Vec<AppError>);

/// One component, loaded.
#[derive(Debug, Clone)]
pub struct LoadedComponent {
    /// What the manifest says about it.
    pub spec: ComponentSpec,
    /// The component's binary.
    pub bytes: Arc<Vec<u8>>,
    /// Its imports and exports.
    pub world: WorldShape,
}

impl LoadedComponent {
    /// The component's label.
    pub fn label(&self) -> &str {
        &self.spec.label
    }
}

/// A manifest with all of its components loaded.
#[derive(Debug, Clone)]
pub struct App {
    /// The checked manifest.
    pub manifest: Manifest,
    /// Components by label.
    pub components: BTreeMap<String, LoadedComponent>,
    /// Content hash of everything that affects behaviour.
    pub revision: String,
}

impl App {
    /// Loads the app whose manifest is `path` (a file, or a directory holding
    /// `amimono.toml`), reading every component. Reports every missing or
    /// unusable component, not only the first.
    pub fn load(path: &Path) -> Result<App, AppLoadErrors> {
        let manifest = Manifest::load(path).map_err(|e| AppLoadErrors(vec![AppError::from(e)]))?;
        App::assemble(manifest, read_wasm, &BTreeMap::new())
    }

    /// An app from a checked manifest and each component's bytes (as stored
    /// in a bundle), instead of the files the manifest names. `worlds` are
    /// the components' shapes when already known (a bundle's index keeps
    /// them), which spares reading every component's types again.
    pub fn from_parts(
        manifest: Manifest,
        mut bytes: BTreeMap<String, Vec<u8>>,
        worlds: &BTreeMap<String, WorldShape>,
    ) -> Result<App, AppLoadErrors> {
        App::assemble(
            manifest,
            |spec| {
                bytes.remove(&spec.label).ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        format!("the bundle holds no component `{}`", spec.label),
                    )
                })
            },
            worlds,
        )
    }

    /// An app from manifest `text` whose components import and export
    /// nothing and have no bytes: for tests of what depends only on the
    /// manifest (bindings, ports).
    #[cfg(test)]
    pub(crate) fn from_manifest_text(text: &str) -> App {
        #![allow(clippy::unwrap_used)]
        let manifest = Manifest::parse(Path::new("amimono.toml"), text.into()).unwrap();
        let components = manifest
            .components
            .values()
            .map(|spec| {
                let component = LoadedComponent {
                    spec: spec.clone(),
                    bytes: Arc::new(Vec::new()),
                    world: WorldShape {
                        imports: Vec::new(),
                        exports: Vec::new(),
                    },
                };
                (spec.label.clone(), component)
            })
            .collect();
        App {
            manifest,
            components,
            revision: "0".into(),
        }
    }

    fn assemble(
        manifest: Manifest,
        mut read: impl FnMut(&ComponentSpec) -> std::io::Result<Vec<u8>>,
        worlds: &BTreeMap<String, WorldShape>,
    ) -> Result<App, AppLoadErrors> {
        let mut components = BTreeMap::new();
        let mut errors = Vec::new();
        for spec in manifest.components.values() {
            let known = worlds.get(&spec.label).cloned();
            match load_component(&manifest, spec, read(spec), known) {
                Ok(component) => {
                    components.insert(spec.label.clone(), component);
                }
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Err(AppLoadErrors(errors));
        }
        let revision = revision::compute(&manifest, &components);
        Ok(App {
            manifest,
            components,
            revision,
        })
    }

    /// The app's name.
    pub fn name(&self) -> &str {
        &self.manifest.app
    }

    /// The component with `label`, if any.
    pub fn component(&self, label: &str) -> Option<&LoadedComponent> {
        self.components.get(label)
    }

    /// The same app with the named layout's jobs (`[layouts.<name>]`) in
    /// force. The revision does not change: every layout ships in one bundle.
    pub fn with_layout(&self, layout: &str) -> Result<App, UnknownLayout> {
        let mut app = self.clone();
        app.manifest.select_layout(layout)?;
        for component in app.components.values_mut() {
            if let Some(spec) = app.manifest.components.get(component.label()) {
                component.spec.job = spec.job.clone();
            }
        }
        Ok(app)
    }
}

fn read_wasm(spec: &ComponentSpec) -> std::io::Result<Vec<u8>> {
    std::fs::read(&spec.source)
}

fn load_component(
    manifest: &Manifest,
    spec: &ComponentSpec,
    read: std::io::Result<Vec<u8>>,
    known_world: Option<WorldShape>,
) -> Result<LoadedComponent, AppError> {
    let label = spec.label.clone();
    let bytes = match read {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let hint = match &spec.build {
                Some(command) => format!(
                    "build it first: `{command}` (in {}), or `cargo xtask build` for the examples",
                    manifest.dir.display()
                ),
                None => "build the component, or fix `source`".to_string(),
            };
            return Err(AppError::MissingWasm {
                diagnostic: Box::new(manifest.diagnostic(
                    spec.source_span.clone(),
                    format!(
                        "component `{label}`: wasm file `{}` does not exist",
                        spec.source.display()
                    ),
                )),
                path: spec.source.clone(),
                label,
                hint,
            });
        }
        Err(e) => {
            return Err(AppError::BadWasm {
                diagnostic: Box::new(manifest.diagnostic(
                    spec.source_span.clone(),
                    format!(
                        "component `{label}`: cannot read `{}`: {e}",
                        spec.source.display()
                    ),
                )),
                label,
            });
        }
    };
    let world = match known_world {
        Some(world) => world,
        None => read_world(manifest, spec, &bytes)?,
    };
    check_binding(manifest, spec, &world)?;
    check_idempotent(manifest, spec, &world)?;
    Ok(LoadedComponent {
        spec: spec.clone(),
        bytes: Arc::new(bytes),
        world,
    })
}

/// The world of the component in `bytes` (its types read and validated).
fn read_world(
    manifest: &Manifest,
    spec: &ComponentSpec,
    bytes: &[u8],
) -> Result<WorldShape, AppError> {
    let label = &spec.label;
    WorldShape::of_component(bytes).map_err(|e| AppError::BadWasm {
        diagnostic: Box::new(manifest.diagnostic(
            spec.source_span.clone(),
            format!(
                "component `{label}`: `{}` is not a usable WebAssembly component: {e:#}",
                spec.source.display()
            ),
        )),
        label: label.clone(),
    })
}

/// Every function the manifest marks `idempotent` (`name` or
/// `interface#name`) is one the component exports.
fn check_idempotent(
    manifest: &Manifest,
    spec: &ComponentSpec,
    world: &WorldShape,
) -> Result<(), AppError> {
    let exported = |entry: &str| {
        world.exports.iter().any(|e| {
            e.functions
                .iter()
                .any(|f| FunctionRef::refers_to(entry, &e.name, f))
                || (!e.is_interface && e.name == entry)
        })
    };
    let Some(unknown) = spec.idempotent.iter().find(|entry| !exported(entry)) else {
        return Ok(());
    };
    let known: Vec<String> = world
        .exports
        .iter()
        .filter(|e| e.is_interface)
        .flat_map(|e| {
            let interface = InterfaceName::unversioned(&e.name);
            e.functions.iter().map(move |f| format!("{interface}#{f}"))
        })
        .collect();
    Err(AppError::UnknownFunction {
        label: spec.label.clone(),
        diagnostic: Box::new(manifest.diagnostic(
            spec.label_span.clone(),
            format!(
                "component `{}` marks `{unknown}` idempotent, but exports no such function (it exports: {})",
                spec.label,
                if known.is_empty() { "no functions".to_string() } else { known.join(", ") }
            ),
        )),
    })
}

/// An `http` component must export `wasi:http/incoming-handler`; an `rpc`
/// component must export at least one interface.
fn check_binding(
    manifest: &Manifest,
    spec: &ComponentSpec,
    world: &WorldShape,
) -> Result<(), AppError> {
    let problem = match spec.binding {
        BindingType::Http if world.http_handler_export().is_none() => Some(format!(
            "component `{}` has binding `http` but does not export `wasi:http/incoming-handler` (it exports: {})",
            spec.label,
            world.export_list()
        )),
        BindingType::Rpc if world.exports.is_empty() => Some(format!(
            "component `{}` has binding `rpc` but exports nothing",
            spec.label
        )),
        _ => None,
    };
    match problem {
        Some(message) => Err(AppError::BindingMismatch {
            label: spec.label.clone(),
            diagnostic: Box::new(manifest.diagnostic(spec.label_span.clone(), message)),
        }),
        None => Ok(()),
    }
}
