//! The one configuration: the command line, the environment and the
//! manifest, worked out once. Which manifest and how it was found, which
//! store and why, the timeout and the "run this to fix it" prefix: every
//! command reads them here, and none works them out again.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::Cli;
use crate::error::Error;
use crate::manifest::{self, Manifest};
use crate::person::TERMINAL;
use crate::store::{self, Store, StoreError, StoreKind};
use crate::term::printable::printable_path;

/// What every command needs besides its own arguments.
pub(crate) struct Config {
    pub(crate) cwd: PathBuf,
    /// `--manifest`, else `WITH_SECRETS_MANIFEST`.
    manifest: Option<PathBuf>,
    /// Every `--manifest` given, for `agent`, which serves them all.
    pub(crate) manifests: Vec<PathBuf>,
    /// Which of the two gave `manifest`.
    manifest_source: Option<&'static str>,
    /// `--store` or `WITH_SECRETS_STORE`, and which; the manifest's `store`
    /// comes next.
    store: Option<(StoreKind, StoreSource)>,
    /// `--profile` or `WITH_SECRETS_PROFILE`, and which.
    profile: Option<(String, &'static str)>,
    /// How long a store may take to answer.
    pub(crate) timeout: Duration,
    /// `--no-cache`: the session cache is left aside.
    no_cache: bool,
    /// The start of a with-secrets command line that reaches the same
    /// manifest and store, for the "run this to fix it" lines of messages.
    pub(crate) fix: String,
    /// The same, but for `--store auto`: where a value goes when the store
    /// chosen is read-only.
    fix_writable: String,
    /// The same as `fix`, without `--profile`: to name another profile.
    fix_without_profile: String,
}

/// Why a store is the one used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoreSource {
    Flag,
    Variable,
    Profile,
    Manifest,
    Auto,
}

impl StoreSource {
    /// `chosen by --store`, ... or `auto`.
    pub(crate) fn why(self) -> &'static str {
        match self {
            Self::Flag => "chosen by --store",
            Self::Variable => "chosen by WITH_SECRETS_STORE",
            Self::Profile => "chosen by the profile's `store`",
            Self::Manifest => "chosen by the manifest's `store`",
            Self::Auto => "auto",
        }
    }
}

/// The manifest, loaded, and the store it settles.
pub(crate) struct Project {
    pub(crate) manifest: Manifest,
    pub(crate) store: StoreKind,
    pub(crate) store_source: StoreSource,
    /// The profile in use, if any.
    pub(crate) profile: Option<String>,
}

impl Config {
    pub(crate) fn new(cli: &Cli) -> Result<Self, Error> {
        let cwd = std::env::current_dir().map_err(|source| Error::CurrentDir { source })?;
        let from_env = std::env::var_os("WITH_SECRETS_MANIFEST")
            .filter(|value| !value.is_empty())
            .map(PathBuf::from);
        let (manifest, manifest_source) = match (cli.manifest.first(), from_env) {
            (Some(path), _) => (Some(path.clone()), Some("--manifest")),
            (None, Some(path)) => (Some(path), Some("WITH_SECRETS_MANIFEST")),
            (None, None) => (None, None),
        };
        let store = cli.store.map(|kind| {
            let source = if cli.store_from_env {
                StoreSource::Variable
            } else {
                StoreSource::Flag
            };
            (kind, source)
        });
        // The variables are still set when the user runs the fix, so only
        // flags need repeating. Messages reach a terminal: a path's control
        // characters are shown escaped, as every other string of ours is.
        let mut manifest_flag = String::new();
        if let Some(path) = cli.manifest.first() {
            manifest_flag.push_str(" -m ");
            manifest_flag.push_str(&shell_words::quote(&printable_path(path)));
        }
        let store_flag = match store {
            Some((kind, StoreSource::Flag)) => format!(" --store {}", kind.spelling()),
            _ => String::new(),
        };
        // The profile is repeated even when the variable chose it: a fix
        // run in another shell without it would reach another entry.
        let profile = cli.profile.clone().map(|name| {
            let source = if cli.profile_from_env {
                "WITH_SECRETS_PROFILE"
            } else {
                "--profile"
            };
            (name, source)
        });
        let profile_flag = match &profile {
            Some((name, _)) => format!(
                " --profile {}",
                shell_words::quote(&crate::term::printable::printable(name))
            ),
            None => String::new(),
        };
        let fix = format!("with-secrets{manifest_flag}{store_flag}{profile_flag}");
        let fix_without_profile = format!("with-secrets{manifest_flag}{store_flag}");
        // The flag wins over the variable and the manifest's `store`.
        let fix_writable = format!("with-secrets{manifest_flag} --store auto{profile_flag}");
        Ok(Self {
            cwd,
            manifest,
            manifests: cli.manifest.clone(),
            manifest_source,
            store,
            profile,
            timeout: cli.timeout,
            no_cache: cli.no_cache,
            fix,
            fix_writable,
            fix_without_profile,
        })
    }

    /// [`Config::fix`] with `--profile profile` in place of any profile.
    pub(crate) fn fix_for_profile(&self, profile: &str) -> String {
        format!("{} --profile {profile}", self.fix_without_profile)
    }

    /// The start of a command line whose `set` can store a value, for a
    /// project whose store is `store`: [`Config::fix`], unless that store
    /// is read-only; then the same with `--store auto`.
    pub(crate) fn set_fix(&self, store: StoreKind) -> &str {
        if store.read_only() {
            &self.fix_writable
        } else {
            &self.fix
        }
    }

    /// Finds and loads the manifest as it is, without a profile applied
    /// (the agent serves every profile's entries).
    #[cfg(unix)]
    pub(crate) fn manifest_as_written(&self) -> Result<Manifest, Error> {
        let explicit = self.manifest.as_deref().zip(self.manifest_source);
        let located = manifest::locate(explicit, &self.cwd)?;
        Ok(Manifest::load(&located)?)
    }

    /// Finds and loads the manifest, applies the profile, and settles the
    /// store: `--store`, else `WITH_SECRETS_STORE`, else the profile's
    /// `store`, else the manifest's, else `auto`. Under `-v` it says which
    /// manifest and profile, and how each was chosen.
    pub(crate) fn project(&self) -> Result<Project, Error> {
        let explicit = self.manifest.as_deref().zip(self.manifest_source);
        let located = manifest::locate(explicit, &self.cwd)?;
        let manifest = Manifest::load(&located)?;
        crate::explain!(
            "manifest {} ({})",
            printable_path(&manifest.path),
            match self.manifest_source {
                Some(source) => format!("from {source}"),
                None => format!(
                    "the nearest {} from {}",
                    manifest::FILE_NAME,
                    printable_path(&self.cwd)
                ),
            }
        );
        let (manifest, profile_store) = match &self.profile {
            Some((name, source)) => {
                let selected = manifest.with_profile(name, source)?;
                crate::explain!("profile {name} (from {source})");
                selected
            }
            None => (manifest, None),
        };
        let (store, store_source) = match (self.store, profile_store, manifest.store) {
            (Some((kind, source)), _, _) => (kind, source),
            (None, Some(kind), _) => (kind, StoreSource::Profile),
            (None, None, Some(kind)) => (kind, StoreSource::Manifest),
            (None, None, None) => (StoreKind::Auto, StoreSource::Auto),
        };
        if store == StoreKind::Vault {
            manifest.check_vault_services()?;
        }
        Ok(Project {
            manifest,
            store,
            store_source,
            profile: self.profile.as_ref().map(|(name, _)| name.clone()),
        })
    }

    /// The store when there is no manifest to settle it (`doctor` with a
    /// broken manifest): the flag or variable, else `auto`.
    pub(crate) fn store_without_manifest(&self) -> (StoreKind, StoreSource) {
        self.store.unwrap_or((StoreKind::Auto, StoreSource::Auto))
    }

    /// What stores are opened with in this run: its timeout, the person
    /// at the terminal, and `vault`, the manifest's `[vault]` table.
    pub(crate) fn store_settings(&self, vault: &crate::manifest::VaultSettings) -> store::Settings {
        store::Settings {
            timeout: self.timeout,
            person: &TERMINAL,
            vault: vault.clone(),
            agent: std::env::var_os("WITH_SECRETS_AGENT")
                .filter(|path| !path.is_empty())
                .map(PathBuf::from),
            cache: !self.no_cache,
        }
    }

    /// Opens a store with this run's settings (see `store_settings`).
    pub(crate) fn open_store(
        &self,
        kind: StoreKind,
        vault: &crate::manifest::VaultSettings,
    ) -> Result<Box<dyn Store>, StoreError> {
        store::open(kind, &self.store_settings(vault))
    }

    /// Where `init` writes: the explicit manifest path, else `./secrets.toml`.
    pub(crate) fn manifest_to_create(&self) -> PathBuf {
        self.manifest
            .clone()
            .unwrap_or_else(|| Path::new(&self.cwd).join(manifest::FILE_NAME))
    }
}
