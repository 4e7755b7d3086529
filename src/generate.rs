//! `with-secrets completions SHELL` and `with-secrets man`: both made from the
//! clap definitions in `cli`, so they never drift from the real options.

use std::io::{self, Write};
use std::process::ExitCode;

use clap::CommandFactory;

use crate::cli::Cli;
use crate::error::Error;

/// Prints the completion script for `shell`.
pub fn completions(shell: clap_complete::Shell) -> Result<ExitCode, Error> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "with-secrets", &mut script);
    print(&script)
}

/// Prints the man page, in roff.
pub fn man() -> Result<ExitCode, Error> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut page)
        .map_err(|source| Error::Stdout { source })?;
    print(&page)
}

fn print(bytes: &[u8]) -> Result<ExitCode, Error> {
    let mut stdout = io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(|source| Error::Stdout { source })?;
    Ok(ExitCode::SUCCESS)
}
