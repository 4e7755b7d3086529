//! `with-secrets get NAME`: print a value, byte for byte.

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use super::common::entry;
use crate::config::Config;
use crate::error::Error;
use crate::resolve::{self, Source};

/// The value in the store, never the environment's. An entry with
/// `generate` that has none gets one, as a run would give it.
pub(crate) fn run(name: &str, config: &Config) -> Result<ExitCode, Error> {
    let project = config.project()?;
    let entry = entry(config, &project, name, "get")?;
    let mut resolution = resolve::lookup_in_store(config, &project, entry);
    if let Some(cause) = resolution.store_error {
        return Err(Error::Store {
            store: resolution.store,
            cause,
        });
    }
    let Some(Source::Store(found)) = resolution.sources.pop() else {
        return Err(Error::NotStored {
            name: name.to_owned(),
            service: entry.service.clone(),
            username: entry.username.clone(),
            store: resolution.store,
            fix: config.fix.clone(),
        });
    };
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
