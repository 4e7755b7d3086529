//! with-secrets: run a command with secrets from the OS keyring as environment
//! variables, as mapped by a checked-in `secrets.toml`.
//!
//! Data flows one way: [`cli`] -> [`manifest`] -> [`resolve`] (with a
//! [`store`]) -> [`exec`]. The subcommands that manage entries are in [`manage`].

pub mod cli;
pub mod doctor;
pub mod error;
pub mod exec;
pub mod manage;
pub mod manifest;
pub mod prompt;
pub mod resolve;
pub mod secret;
pub mod store;

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
            fix.push_str(&shell_words::quote(&path.to_string_lossy()));
        }
        if let Some(kind) = cli.store
            && std::env::var_os("WITH_SECRETS_STORE").is_none_or(|value| value != kind.name())
        {
            fix.push_str(" --store ");
            fix.push_str(kind.name());
        }
        Ok(Self {
            cwd,
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
        let path = manifest::locate(self.manifest.as_deref(), &self.cwd)?;
        Manifest::load(&path)
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
    let context = Context::new(&cli)?;
    match cli.command {
        Some(command) => manage::run(command, &context),
        None => run_command(&cli.run, &context),
    }
}

/// The main job: resolve every variable, then run the command with them.
fn run_command(argv: &[std::ffi::OsString], context: &Context) -> Result<ExitCode, Error> {
    let Some((program, args)) = argv.split_first() else {
        return Err(Error::Usage {
            message:
                "nothing to run: give a command after `--`, e.g. with-secrets -- cargo test\n  \
                      see: with-secrets --help"
                    .to_owned(),
        });
    };
    // Find the command before touching the keyring, so a typo never costs an
    // unlock prompt, and load the manifest before that, so a bad manifest is
    // reported even when the command is also wrong.
    let manifest = context.load_manifest()?;
    let path = exec::find(program, &context.cwd)?;
    let kind = context.store_kind(&manifest);
    let resolution = resolve::lookup(
        &manifest.entries,
        kind.name(),
        || context.open_store(kind),
        resolve::from_process_env,
    );
    let variables = resolve::variables(&manifest, resolution, &context.fix)?;
    exec::run(program, &path, args, variables, &context.fix)
}
