//! `with-secrets man`: the man page, in roff, made from the clap definitions
//! in `cli`, as `--help` is.

use std::process::ExitCode;

use clap::CommandFactory;

use super::completions::print;
use crate::cli::Cli;
use crate::error::Error;

/// Prints the man page, in roff.
pub(crate) fn run() -> Result<ExitCode, Error> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut page)
        .map_err(|source| Error::Stdout { source })?;
    print(&page)
}
