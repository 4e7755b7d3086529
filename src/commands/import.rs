//! `with-secrets import --from STORE`: copy every manifest entry found in
//! one store into the chosen one.

use std::io::{self, Write};
use std::process::ExitCode;

use super::common::{open, store_error};
use crate::config::Config;
use crate::error::Error;
use crate::resolve;
use crate::store::{self, Store, StoreKind, keyrings_alt};
use crate::term::printable::printable;

/// Copies every entry found in `from` into the chosen store; reports what it
/// copied and what it did not find, by name, never by value.
pub(crate) fn run(from: StoreKind, config: &Config) -> Result<ExitCode, Error> {
    let project = config.project()?;
    let manifest = &project.manifest;
    if from == StoreKind::Vault {
        manifest.check_vault_services()?;
    }
    let into = project.store;
    if from == into {
        return Err(Error::Usage {
            message: format!(
                "--from and --store both name {}: import copies from one store into another",
                from.name()
            ),
        });
    }
    let keys: Vec<_> = manifest.entries.iter().map(resolve::key).collect();
    let source = match from {
        StoreKind::KeyringsAlt => {
            keyrings_alt::KeyringsAlt::open(&config.store_settings(&project.manifest.vault))
                .map(|store| Box::new(store.without_warning()) as Box<dyn Store>)
        }
        other => config.open_store(other, &project.manifest.vault),
    };
    let mut source = source.map_err(|cause| Error::Store {
        store: from.name(),
        cause,
    })?;
    let found = source
        .get_all(&keys)
        .map_err(store_error(source.as_ref()))?;
    let mut target = open(config, &project)?;
    let width = manifest
        .entries
        .iter()
        .map(|e| e.name.as_str().len())
        .max()
        .unwrap_or(0);
    let mut copied = 0;
    let mut stdout = io::stdout().lock();
    for (entry, found) in manifest.entries.iter().zip(found) {
        let key = resolve::key(entry);
        let outcome = match found {
            Some(found) => {
                target
                    .set(key, &store::label(entry.name.as_str(), key), &found.secret)
                    .map_err(store_error(target.as_ref()))?;
                copied += 1;
                "copied   "
            }
            None => "not found",
        };
        writeln!(
            stdout,
            "{outcome}  {:width$}  {} / {}",
            entry.name,
            printable(&entry.service),
            printable(&entry.username)
        )
        .map_err(|source| Error::Stdout { source })?;
    }
    drop(stdout);
    crate::note!(
        "with-secrets: copied {copied} of {} entries from {} into {}",
        manifest.entries.len(),
        from.name(),
        target.name()
    );
    if from == StoreKind::KeyringsAlt && copied > 0 {
        let files =
            keyrings_alt::KeyringsAlt::open(&config.store_settings(&project.manifest.vault))
                .map(|store| store.files())
                .unwrap_or_default();
        for (path, count) in files {
            // Deleting is the user's call: the file may hold entries of other
            // projects, and it is their only copy until those are moved too.
            crate::note!(
                "  {} holds {count} entr{}; once `with-secrets check` shows yours found, and \
                 any others in it are moved too, delete it: rm {}",
                path.display(),
                if count == 1 { "y" } else { "ies" },
                shell_words::quote(&path.to_string_lossy())
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
