//! Dispatch: the parsed command line, made into one [`Config`], handed to
//! the command it names.

use std::process::ExitCode;

use crate::cli::{Cli, Command};
use crate::commands;
use crate::config::Config;
use crate::error::Error;
use crate::term::verbosity::{self, Verbosity};

pub(crate) fn run(cli: Cli) -> Result<ExitCode, Error> {
    verbosity::set(if cli.quiet {
        Verbosity::Quiet
    } else if cli.verbose {
        Verbosity::Verbose
    } else {
        Verbosity::Normal
    });
    let config = Config::new(&cli)?;
    if config.manifests.len() > 1 && !matches!(cli.command, Some(Command::Agent { .. })) {
        return Err(Error::Usage {
            message: format!(
                "--manifest is given {} times; only `with-secrets agent` serves more than one",
                config.manifests.len()
            ),
        });
    }
    let command = match (cli.command, cli.command_line) {
        (Some(_), Some(_)) => {
            return Err(Error::Usage {
                message: "-c/--command gives the command to run, so it cannot go with a \
                          subcommand"
                    .to_owned(),
            });
        }
        (Some(command), None) => command,
        (None, Some(line)) => {
            let argv = commands::run::split_command_line(&line)?;
            return commands::run::run(&argv, cli.mask, &config);
        }
        (None, None) => return commands::run::run(&cli.run, cli.mask, &config),
    };
    match command {
        Command::Set { name } => commands::set::run(&name, &config),
        Command::Get { name } => commands::get::run(&name, &config),
        Command::Delete { name } => commands::delete::run(&name, &config),
        Command::Check { format } => commands::check::run(format, &config),
        Command::Init { names } => commands::init::run(&names, &config),
        Command::Import { from } => commands::import::run(from, &config),
        Command::Doctor => commands::doctor::run(&config),
        Command::Env { format } => commands::env::run(format, &config),
        Command::Unlock { duration } => commands::unlock::unlock(duration, &config),
        Command::Lock => commands::unlock::lock(&config),
        Command::Completions { shell } => commands::completions::run(shell),
        Command::Man => commands::man::run(),
        Command::Schema => commands::schema::run(),
        #[cfg(unix)]
        Command::Agent {
            socket,
            allow_writes,
        } => commands::agent::run(&config, socket.as_deref(), allow_writes),
        #[cfg(not(unix))]
        Command::Agent { .. } => Err(Error::Usage {
            message: "`with-secrets agent` listens on a Unix socket: run it on Linux, macOS \
                      or WSL"
                .to_owned(),
        }),
        Command::Bridge => commands::bridge::run(&config),
    }
}
