//! with-secrets: run a command with secrets from the OS keyring as environment
//! variables, as mapped by a checked-in `secrets.toml`.
//!
//! Data flows one way: [`cli`] -> [`manifest`] -> [`resolve`] (with a
//! [`store`]) -> [`exec`]. [`variables`] puts manifest and resolve together
//! for every command that needs values; `--mask` runs through [`supervise`].
//! The subcommands that manage entries are in [`manage`].

pub mod cli;
pub mod doctor;
pub mod env_format;
pub mod error;
pub mod exec;
pub mod generate;
pub mod manage;
pub mod manifest;
pub mod mask;
pub mod prompt;
#[cfg(unix)]
pub mod pty;
pub mod resolve;
pub mod secret;
#[cfg(unix)]
pub mod signals;
pub mod store;
pub mod supervise;
pub mod variables;
pub mod verbosity;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub use crate::cli::Cli;
pub use crate::error::Error;
use crate::manifest::Manifest;

/// What every command needs to know besides its own arguments.
pub struct Context {
    pub cwd: PathBuf,
    /// `--manifest`, else `WITH_SECRETS_MANIFEST`.
    pub manifest: Option<PathBuf>,
    /// Which of the two gave `manifest`, for `-v`.
    pub manifest_source: Option<&'static str>,
    /// The start of a with-secrets command line that reaches the same
    /// manifest, for the "run this to fix it" lines of messages.
    pub fix: String,
    /// `--store` or `WITH_SECRETS_STORE`; the manifest's `store` comes next.
    pub store: Option<store::StoreKind>,
    /// How long a store may take to answer.
    pub timeout: std::time::Duration,
}

impl Context {
    pub fn new(cli: &Cli) -> Result<Self, Error> {
        let cwd = std::env::current_dir().map_err(|source| Error::CurrentDir { source })?;
        let from_env = std::env::var_os("WITH_SECRETS_MANIFEST")
            .filter(|value| !value.is_empty())
            .map(PathBuf::from);
        // The variables are still set when the user runs the fix, so only
        // explicit flags need repeating.
        let mut fix = "with-secrets".to_owned();
        if let Some(path) = &cli.manifest {
            fix.push_str(" -m ");
            // Messages reach a terminal: a path's control characters are
            // shown escaped, as every other string of ours is.
            fix.push_str(&shell_words::quote(&manifest::printable_path(path)));
        }
        if let Some(kind) = cli.store
            && std::env::var_os("WITH_SECRETS_STORE").is_none_or(|value| value != kind.name())
        {
            fix.push_str(" --store ");
            fix.push_str(kind.name());
        }
        let manifest_source = match (&cli.manifest, &from_env) {
            (Some(_), _) => Some("--manifest"),
            (None, Some(_)) => Some("WITH_SECRETS_MANIFEST"),
            (None, None) => None,
        };
        Ok(Self {
            cwd,
            manifest_source,
            manifest: cli.manifest.clone().or(from_env),
            fix,
            store: cli.store,
            timeout: cli.timeout,
        })
    }

    /// Which store to use: `--store`, else `WITH_SECRETS_STORE`, else the
    /// manifest's `store`, else `auto`.
    pub fn store_kind(&self, manifest: &Manifest) -> store::StoreKind {
        self.store.or(manifest.store).unwrap_or_default()
    }

    /// Opens a store, with this run's timeout.
    pub fn open_store(
        &self,
        kind: store::StoreKind,
    ) -> Result<Box<dyn store::Store>, store::StoreError> {
        store::open(kind, self.timeout)
    }

    /// Finds and loads the manifest.
    pub fn load_manifest(&self) -> Result<Manifest, Error> {
        let located = manifest::locate(self.manifest.as_deref(), &self.cwd)?;
        Manifest::load(&located)
    }

    /// Where `init` writes: the explicit manifest path, else `./secrets.toml`.
    pub fn manifest_to_create(&self) -> PathBuf {
        self.manifest
            .clone()
            .unwrap_or_else(|| Path::new(&self.cwd).join(manifest::FILE_NAME))
    }
}

/// Runs the parsed command line. Returns the exit code to use, or the error
/// to report; `Error::exit_code` gives that error's code.
pub fn run(cli: Cli) -> Result<ExitCode, Error> {
    verbosity::set(if cli.quiet {
        verbosity::Verbosity::Quiet
    } else if cli.verbose {
        verbosity::Verbosity::Verbose
    } else {
        verbosity::Verbosity::Normal
    });
    let context = Context::new(&cli)?;
    match (cli.command, cli.command_line) {
        (Some(_), Some(_)) => Err(Error::Usage {
            message: "-c/--command gives the command to run, so it cannot go with a subcommand"
                .to_owned(),
        }),
        (Some(command), None) => manage::run(command, &context),
        (None, Some(line)) => run_command(&split_command_line(&line)?, cli.mask, &context),
        (None, None) => run_command(&cli.run, cli.mask, &context),
    }
}

/// `-c STRING` as argv: split into words as sh would (quotes, backslashes),
/// but with no shell to expand variables, globs or `~`.
fn split_command_line(line: &str) -> Result<Vec<std::ffi::OsString>, Error> {
    let words = shell_words::split(line).map_err(|_| Error::Usage {
        message: format!(
            "-c: cannot split the command into words: a quote is not closed in: {line}"
        ),
    })?;
    Ok(words.into_iter().map(Into::into).collect())
}

/// The main job: resolve every variable, then run the command with them.
fn run_command(
    argv: &[std::ffi::OsString],
    mask: bool,
    context: &Context,
) -> Result<ExitCode, Error> {
    let Some((program, args)) = argv.split_first() else {
        return Err(Error::Usage {
            message: "nothing to run: give a command after `--`, e.g. with-secrets -- cargo test, \
                 or as one string with -c\n  see: with-secrets --help"
                .to_owned(),
        });
    };
    // Find the command before touching the keyring, so a typo never costs an
    // unlock prompt, and load the manifest before that, so a bad manifest is
    // reported even when the command is also wrong.
    let manifest = variables::load_manifest(context)?;
    let path = exec::find(program, &context.cwd)?;
    let resolution = variables::lookup(context, &manifest);
    let resolved = variables::resolve(context, &manifest, resolution)?;
    let added = variables::from_store(&resolved);
    let mask = mask.then(|| values_to_mask(&resolved));
    drop(resolved);
    exec::run(program, &path, args, added, mask.as_deref(), &context.fix)
}

/// What `--mask` hides: every value, from the store or the environment (in
/// CI those are the secrets), less the ones too short to mask, which a
/// warning names.
fn values_to_mask(resolved: &[variables::Variable]) -> Vec<(String, secret::Secret)> {
    let (short, values): (Vec<_>, Vec<_>) = variables::all(resolved)
        .into_iter()
        .partition(|(_, value)| mask::is_short(value.expose()));
    if !short.is_empty() {
        let names: Vec<&str> = short.iter().map(|(name, _)| name.as_str()).collect();
        crate::warning!(
            "with-secrets: warning: --mask leaves {} unmasked: values shorter than {} characters \
             are not masked, as that would mask ordinary text",
            names.join(", "),
            mask::MIN_LENGTH
        );
    }
    crate::explain!(
        "--mask: masking {} value{} in the command's output",
        values.len(),
        if values.len() == 1 { "" } else { "s" }
    );
    values
}
