//! `with-secrets delete NAME`: remove an entry's item, and any duplicates.

use std::process::ExitCode;

use super::common::{entry, open, store_error};
use crate::config::Config;
use crate::error::Error;
use crate::resolve;

pub(crate) fn run(name: &str, config: &Config) -> Result<ExitCode, Error> {
    let project = config.project()?;
    let entry = entry(config, &project, name, "delete")?;
    let mut store = open(config, &project)?;
    let removed = store
        .delete(resolve::key(entry))
        .map_err(store_error(store.as_ref()))?;
    if removed == 0 {
        crate::warning!(
            "with-secrets: {name} was not stored in {} (service {:?}, username {:?}); nothing to delete",
            store.name(),
            entry.service,
            entry.username
        );
    }
    Ok(ExitCode::SUCCESS)
}
