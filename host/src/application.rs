//! [`Application`]: an app opened from its directory (or manifest) or from a
//! bundle — its name, revision, jobs, layouts, `_config` — and the start of
//! preparing one of its jobs ([`Application::job`]).

use crate::app::App;
use crate::bindings_file::Bindings;
use crate::bundle::{Bundle, is_bundle};
use crate::job::{GraphLookup, JobBuilder};
use crate::placement::LOCAL_JOB;
use anyhow::Result;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// An opened app: from a directory holding `amimono.toml`, the manifest
/// itself, or a bundle (`.amimono`, whose precompiled graphs are used).
#[derive(Clone)]
pub struct Application {
    app: Arc<App>,
    bundle: Option<Arc<Bundle>>,
    path: PathBuf,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("name", &self.name())
            .field("revision", &self.revision())
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Opens the app or bundle at `path`: the manifest checked (every problem
    /// reported at once), every component read, the revision computed (for a
    /// bundle: checked against its contents).
    pub fn open(path: impl AsRef<Path>) -> Result<Application> {
        let path = path.as_ref();
        let (app, bundle) = if is_bundle(path) {
            let bundle = Bundle::open(path)?;
            (bundle.app.clone(), Some(Arc::new(bundle)))
        } else {
            (App::load(path)?, None)
        };
        Ok(Application {
            app: Arc::new(app),
            bundle,
            path: path.to_path_buf(),
        })
    }

    /// The same app with the jobs of layout `[layouts.<name>]` in force.
    pub fn with_layout(self, layout: &str) -> Result<Application> {
        Ok(Application {
            app: Arc::new(self.app.with_layout(layout)?),
            ..self
        })
    }

    /// The app's name (`app` in the manifest).
    pub fn name(&self) -> &str {
        self.app.name()
    }

    /// The revision: a content hash of everything that affects behaviour.
    pub fn revision(&self) -> &str {
        &self.app.revision
    }

    /// The jobs in force (`[jobs]`, or the layout's).
    pub fn jobs(&self) -> Vec<String> {
        self.app
            .manifest
            .job_names()
            .into_iter()
            .map(str::to_string)
            .collect()
    }

    /// The named layouts the manifest declares.
    pub fn layouts(&self) -> Vec<String> {
        self.app.manifest.layouts.keys().cloned().collect()
    }

    /// The component labels.
    pub fn components(&self) -> Vec<String> {
        self.app.components.keys().cloned().collect()
    }

    /// What `AMIMONO_JOB=_config` prints: the app config as JSON.
    pub fn config_json(&self, bindings: Option<&Bindings>) -> serde_json::Value {
        crate::config_json::app_config(&self.app, bindings)
    }

    /// Reads the bindings file at `path` (TOML), checked against this app.
    pub fn load_bindings(&self, path: &Path) -> Result<Bindings> {
        Ok(Bindings::load(path, &self.app)?)
    }

    /// Where the app keeps durable data unless told otherwise:
    /// `.amimono/data` beside the manifest, or `<bundle>.data` beside a bundle.
    pub fn default_data_dir(&self) -> PathBuf {
        match &self.bundle {
            Some(bundle) => bundle.path.with_extension("data"),
            None => self.app.manifest.dir.join(".amimono").join("data"),
        }
    }

    /// Whether it was opened from a bundle.
    pub fn is_bundle(&self) -> bool {
        self.bundle.is_some()
    }

    /// Starts preparing job `job` (a job in force, or `_local` for every
    /// component in one process).
    pub fn job(&self, job: &str) -> JobBuilder {
        let precompiled = self
            .bundle
            .clone()
            .map(|bundle| bundle as Arc<dyn GraphLookup>);
        JobBuilder::new(self.app.clone(), precompiled, job, self.default_data_dir())
    }

    /// Starts preparing every component in one process (`_local`).
    pub fn local(&self) -> JobBuilder {
        self.job(LOCAL_JOB)
    }

    pub(crate) fn app(&self) -> &App {
        &self.app
    }
}
