//! `with-secrets get NAME`: print a value, byte for byte.

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use super::common::{entry, open, store_error};
use crate::config::Config;
use crate::error::Error;
use crate::resolve;

pub(crate) fn run(name: &str, config: &Config) -> Result<ExitCode, Error> {
    let project = config.project()?;
    let entry = entry(&project.manifest, name)?;
    let mut store = open(config, &project)?;
    let found = store
        .get_all(&[resolve::key(entry)])
        .map_err(store_error(store.as_ref()))?
        .pop()
        .flatten()
        .ok_or_else(|| Error::NotStored {
            name: name.to_owned(),
            service: entry.service.clone(),
            username: entry.username.clone(),
            store: store.name(),
            fix: config.fix.clone(),
        })?;
    // Straight to the descriptor: std's stdout buffer would keep a copy.
    let newline: &[u8] = if io::stdout().is_terminal() {
        b"\n"
    } else {
        b""
    };
    let mut stdout = crate::secret::stdout();
    stdout
        .write_all(found.secret.expose())
        .and_then(|()| stdout.write_all(newline))
        .and_then(|()| stdout.flush())
        .map_err(|source| Error::Stdout { source })?;
    Ok(ExitCode::SUCCESS)
}
