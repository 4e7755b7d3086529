//! Helpers the subcommands share: opening the store the project settles,
//! finding an entry by name.

use crate::config::{Config, Project};
use crate::error::Error;
use crate::manifest::{Entry, Manifest};
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

/// The manifest entry for `name`, or an error that says how to add it.
pub(crate) fn entry<'m>(manifest: &'m Manifest, name: &str) -> Result<&'m Entry, Error> {
    manifest.entry(name).ok_or_else(|| Error::UnknownName {
        name: name.to_owned(),
        path: manifest.path.clone(),
    })
}
