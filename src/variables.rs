//! The variables a run gets, as the run form, `-c`, `env` and `check` all
//! work them out: load the manifest, look every entry up, fall back to the
//! environment. With `-v` it says on stderr which manifest and store it
//! used, why, and how long the lookup took; never a value.

use std::time::{Duration, Instant};

use crate::Context;
use crate::error::Error;
use crate::error::first_line;
use crate::manifest::Manifest;
use crate::resolve::{self, Resolution, Source};
use crate::secret::Secret;
use crate::store;

/// A variable with a value, and where the value came from.
pub struct Variable {
    pub name: String,
    pub value: Secret,
    /// From the store; else it was already in the environment (the CI
    /// fallback), so the command has it without our help.
    pub from_store: bool,
}

/// Finds and loads the manifest, saying which one under `-v`.
pub fn load_manifest(context: &Context) -> Result<Manifest, Error> {
    let manifest = context.load_manifest()?;
    crate::explain!(
        "manifest {} ({})",
        crate::manifest::printable_path(&manifest.path),
        match context.manifest_source {
            Some(source) => format!("from {source}"),
            None => format!(
                "the nearest {} from {}",
                crate::manifest::FILE_NAME,
                crate::manifest::printable_path(&context.cwd)
            ),
        }
    );
    Ok(manifest)
}

/// Looks every entry up, saying under `-v` which store answered, why that
/// one, and how long it took.
pub fn lookup(context: &Context, manifest: &Manifest) -> Resolution {
    let kind = context.store_kind(manifest);
    let start = Instant::now();
    let resolution = resolve::lookup(
        &manifest.entries,
        kind.name(),
        || context.open_store(kind),
        resolve::from_process_env,
    );
    if crate::verbosity::verbose() {
        explain_lookup(context, manifest, &resolution, start.elapsed());
    }
    resolution
}

/// Every variable with a value, in manifest order: the store's, then (for
/// what the store lacks) the environment's. Fails as the run form does when
/// a required one has neither.
pub fn resolve(
    context: &Context,
    manifest: &Manifest,
    resolution: Resolution,
) -> Result<Vec<Variable>, Error> {
    let mut found = resolve::variables(manifest, resolution, &context.fix)?
        .into_iter()
        .peekable();
    let mut variables = Vec::new();
    for entry in &manifest.entries {
        let name = entry.name.as_str();
        if let Some((_, value)) = found.next_if(|(found, _)| found == name) {
            variables.push(Variable {
                name: name.to_owned(),
                value,
                from_store: true,
            });
        } else if let Some(value) = resolve::from_process_env(name).filter(|v| !v.is_empty()) {
            variables.push(Variable {
                name: name.to_owned(),
                value: Secret::new(value.into_encoded_bytes()),
                from_store: false,
            });
        }
    }
    Ok(variables)
}

/// The ones the command does not already have: those from the store.
pub fn from_store(variables: &[Variable]) -> Vec<(String, Secret)> {
    variables
        .iter()
        .filter(|v| v.from_store)
        .map(|v| (v.name.clone(), v.value.clone()))
        .collect()
}

/// Every one, by name.
pub fn all(variables: &[Variable]) -> Vec<(String, Secret)> {
    variables
        .iter()
        .map(|v| (v.name.clone(), v.value.clone()))
        .collect()
}

fn explain_lookup(context: &Context, manifest: &Manifest, resolution: &Resolution, took: Duration) {
    if manifest.entries.is_empty() {
        crate::explain!("store not opened: the manifest has no entries");
        return;
    }
    let why = match (context.store, manifest.store) {
        (Some(_), _) if std::env::var_os("WITH_SECRETS_STORE").is_some() => {
            "chosen by WITH_SECRETS_STORE".to_owned()
        }
        (Some(_), _) => "chosen by --store".to_owned(),
        (None, Some(_)) => "chosen by the manifest's `store`".to_owned(),
        (None, None) => match (&resolution.passed_over, &resolution.store_error) {
            (Some(reason), _) => format!(
                "auto: {} is not here: {}",
                store::native_name(),
                first_line(reason)
            ),
            (None, None) => "auto: the platform's keyring answered".to_owned(),
            (None, Some(_)) => "auto".to_owned(),
        },
    };
    crate::explain!("store {} ({why})", resolution.store);
    if let Some(err) = resolution.store_failed() {
        crate::explain!(
            "{} failed, so nothing is looked up, not even in the environment: {}",
            resolution.store,
            first_line(err)
        );
    } else if let Some(err) = &resolution.store_error {
        crate::explain!(
            "{} is not here, so every value comes from the environment: {}",
            resolution.store,
            first_line(err)
        );
    }
    let sources: Vec<String> = manifest
        .entries
        .iter()
        .zip(&resolution.sources)
        .map(|(entry, source)| {
            let status = match source {
                Source::Store(_) => format!("from {}", resolution.store),
                Source::Environment => "from the environment".to_owned(),
                Source::Missing if entry.optional => "missing (optional)".to_owned(),
                Source::Missing => "missing".to_owned(),
            };
            format!("{} {status}", entry.name)
        })
        .collect();
    crate::explain!(
        "looked up {} entr{} in {}: {}",
        manifest.entries.len(),
        if manifest.entries.len() == 1 {
            "y"
        } else {
            "ies"
        },
        human(took),
        sources.join(", ")
    );
}

/// `12.3 ms` or `1.25 s`.
fn human(took: Duration) -> String {
    if took < Duration::from_secs(1) {
        format!("{:.1} ms", took.as_secs_f64() * 1e3)
    } else {
        format!("{:.2} s", took.as_secs_f64())
    }
}
