//! Helpers the subcommands share: opening the store the project settles,
//! finding an entry by name.

use crate::config::{Config, Project};
use crate::error::Error;
use crate::manifest::Entry;
use crate::store::{self, Store};

pub(crate) fn open(config: &Config, project: &Project) -> Result<Box<dyn Store>, Error> {
    config
        .open_store(project.store, &project.manifest.vault)
        .map_err(|cause| Error::Store {
            store: project.store.name(),
            cause,
        })
}

pub(crate) fn store_error(store: &dyn Store) -> impl FnOnce(store::StoreError) -> Error + '_ {
    |cause| Error::Store {
        store: store.name(),
        cause,
    }
}

/// The manifest entry for `name`, or an error that says how to add it, or,
/// when only profiles define it, the `--profile` line that reaches it.
/// `command` is the subcommand and its arguments after the name's place,
/// e.g. `set`, for that line.
pub(crate) fn entry<'m>(
    config: &Config,
    project: &'m Project,
    name: &str,
    command: &str,
) -> Result<&'m Entry, Error> {
    let manifest = &project.manifest;
    if let Some(entry) = manifest.entry(name) {
        return Ok(entry);
    }
    let profiles: Vec<String> = manifest
        .profiles
        .iter()
        .filter(|profile| project.profile.as_deref() != Some(profile.name.as_str()))
        .filter(|profile| profile.entries.iter().any(|e| e.name.as_str() == name))
        .map(|profile| profile.name.clone())
        .collect();
    match profiles.first() {
        Some(first) => Err(Error::NameInProfile {
            name: name.to_owned(),
            path: manifest.path.clone(),
            fix: format!("{} {command} {name}", config.fix_for_profile(first)),
            profiles,
        }),
        None => Err(Error::UnknownName {
            name: name.to_owned(),
            path: manifest.path.clone(),
        }),
    }
}
