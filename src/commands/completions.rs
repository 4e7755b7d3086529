//! `with-secrets completions SHELL`: a completion script made from the clap
//! definitions in `cli`, so it never drifts from the real options.

use std::io::{self, Write};
use std::process::ExitCode;

use clap::CommandFactory;

use crate::cli::Cli;
use crate::error::Error;

/// Prints the completion script for `shell`.
pub(crate) fn run(shell: clap_complete::Shell) -> Result<ExitCode, Error> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "with-secrets", &mut script);
    print(&script)
}

pub(super) fn print(bytes: &[u8]) -> Result<ExitCode, Error> {
    let mut stdout = io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(|source| Error::Stdout { source })?;
    Ok(ExitCode::SUCCESS)
}
