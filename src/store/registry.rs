//! Every store there is: the names a person gives in `--store`,
//! `WITH_SECRETS_STORE` and the manifest's `store`, what each one is for,
//! how each is opened, and what each says of itself in `doctor`.
//!
//! Adding a store is a file (or folder) of its own beside this one, a
//! [`StoreKind`] variant, and the arms the compiler then asks for here:
//! every `match` below names every kind, and a kind a platform lacks has
//! an arm of its own that says so.

use std::time::Duration;

use super::{Common, Person, Store, StoreError, auto, file, keyrings_alt, vault};

/// Declares [`StoreKind`] and [`StoreKind::ALL`] from one list, so that no
/// kind is ever left out of `ALL` (and so out of `--store`, help and
/// `doctor`).
macro_rules! store_kinds {
    ($($(#[$meta:meta])* $kind:ident,)+) => {
        /// A store to use.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        pub enum StoreKind {
            $($(#[$meta])* $kind,)+
        }

        impl StoreKind {
            /// Every kind, in the order help lists them.
            pub(crate) const ALL: &'static [Self] = &[$(Self::$kind,)+];
        }
    };
}

store_kinds! {
    #[default]
    Auto,
    SecretService,
    Keychain,
    Windows,
    File,
    Keyutils,
    KeyringsAlt,
    Vault,
    Agent,
}

/// A store opened, or why not.
type Opened = Result<Box<dyn Store>, StoreError>;

/// What a kind of store is, and how it is used: one arm per kind in
/// [`StoreKind::entry`], where a kind this platform lacks says so in its
/// `open` and `report`.
struct Entry {
    /// The name a person uses for the store it opens.
    name: &'static str,
    /// What it is, in one line.
    about: &'static str,
    /// Whether with-secrets only reads it, so that `set` cannot work.
    read_only: bool,
    /// Opens it. This must be cheap and must not block: a store that talks
    /// to a daemon or a server starts talking when first used.
    open: fn(StoreKind, &Settings) -> Opened,
    /// What it says of itself in `doctor`, given the kind the runs use;
    /// `None` where it has nothing worth saying.
    report: fn(StoreKind, &Settings) -> Option<Report>,
}

impl StoreKind {
    fn entry(self) -> Entry {
        match self {
            // `auto` is the platform's keyring until it turns out not to
            // be there, and is told in `doctor` through the stores it
            // picks from.
            Self::Auto => Entry {
                name: native_name(),
                about: "The platform's keyring (secret-service, keychain or windows) when it \
                        answers, else file",
                read_only: false,
                open: |_, settings| Ok(Box::new(auto::Auto::new(settings))),
                report: nothing,
            },
            Self::SecretService => Entry {
                name: "secret-service",
                about: "The freedesktop Secret Service (gnome-keyring, KeePassXC, oo7-daemon, \
                        KWallet): Linux, BSD",
                read_only: false,
                #[cfg(all(unix, not(target_os = "macos")))]
                open: |_, settings| {
                    Ok(Box::new(super::secret_service::SecretService::connect(
                        settings,
                    )?))
                },
                #[cfg(all(unix, not(target_os = "macos")))]
                report: |_, settings| Some(super::secret_service::report(settings)),
                #[cfg(not(all(unix, not(target_os = "macos"))))]
                open: unsupported,
                #[cfg(not(all(unix, not(target_os = "macos"))))]
                report: nothing,
            },
            Self::Keychain => Entry {
                name: "keychain",
                about: "The macOS Keychain",
                read_only: false,
                #[cfg(target_os = "macos")]
                open: |_, _| Ok(Box::new(super::native::Native::open()?)),
                #[cfg(target_os = "macos")]
                report: |_, _| Some(Report::lines(vec![("keychain:", "built in".to_owned())])),
                #[cfg(not(target_os = "macos"))]
                open: unsupported,
                #[cfg(not(target_os = "macos"))]
                report: nothing,
            },
            Self::Windows => Entry {
                name: "windows",
                about: "The Windows Credential Manager",
                read_only: false,
                #[cfg(windows)]
                open: |_, _| Ok(Box::new(super::windows::Windows::open())),
                #[cfg(windows)]
                report: |_, _| Some(Report::lines(vec![("windows:", "built in".to_owned())])),
                // From WSL, through the Windows build (see `bridge`).
                #[cfg(target_os = "linux")]
                open: |_, settings| Ok(Box::new(super::bridge::Bridge::open(settings))),
                #[cfg(target_os = "linux")]
                report: |chosen, settings| {
                    super::bridge::report(chosen == StoreKind::Windows, settings)
                },
                #[cfg(not(any(windows, target_os = "linux")))]
                open: unsupported,
                #[cfg(not(any(windows, target_os = "linux")))]
                report: nothing,
            },
            Self::File => Entry {
                name: "file",
                about: "An encrypted file (age format) in $XDG_DATA_HOME/with-secrets; needs no \
                        daemon",
                read_only: false,
                open: |_, settings| Ok(Box::new(file::FileStore::open(settings)?)),
                report: |_, settings| Some(Report::lines(file::doctor::report(settings))),
            },
            Self::Keyutils => Entry {
                name: "keyutils",
                about: "The Linux kernel keyring: fast, no daemon, but cleared on reboot",
                read_only: false,
                #[cfg(target_os = "linux")]
                open: |_, _| Ok(Box::new(super::keyutils::Keyutils::open()?)),
                #[cfg(target_os = "linux")]
                report: |_, _| Some(super::keyutils::report()),
                #[cfg(not(target_os = "linux"))]
                open: unsupported,
                #[cfg(not(target_os = "linux"))]
                report: nothing,
            },
            Self::KeyringsAlt => Entry {
                name: "keyrings-alt",
                about: "Python keyrings.alt's files, read-only, to use and import what is in them",
                read_only: true,
                open: |_, settings| Ok(Box::new(keyrings_alt::KeyringsAlt::open(settings)?)),
                report: |_, settings| Some(Report::lines(keyrings_alt::report(settings))),
            },
            Self::Vault => Entry {
                name: "vault",
                about: "A HashiCorp Vault or OpenBao server (KV v2), at BAO_ADDR or VAULT_ADDR \
                        (also: openbao)",
                read_only: false,
                open: |_, settings| Ok(Box::new(vault::Vault::open(settings))),
                // Only when the runs use it: it would ask a server.
                report: |chosen, settings| {
                    (chosen == StoreKind::Vault).then(|| Report::lines(vault::report(settings)))
                },
            },
            Self::Agent => Entry {
                name: "agent",
                about: "`with-secrets agent` on the machine you sit at, through the socket \
                        WITH_SECRETS_AGENT names: from a dev container or over SSH",
                read_only: false,
                #[cfg(unix)]
                open: |_, settings| Ok(Box::new(super::agent::Agent::open(settings))),
                #[cfg(unix)]
                report: |chosen, settings| {
                    super::agent::report(chosen == StoreKind::Agent, settings)
                },
                #[cfg(not(unix))]
                open: unsupported,
                #[cfg(not(unix))]
                report: nothing,
            },
        }
    }

    /// How a person writes it.
    pub(crate) fn spelling(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            other => other.name(),
        }
    }

    /// The kind written `text`, if any; `openbao` is another name for
    /// `vault`, as OpenBao speaks Vault's API.
    pub(crate) fn from_spelling(text: &str) -> Option<Self> {
        if text == "openbao" {
            return Some(Self::Vault);
        }
        Self::ALL
            .iter()
            .copied()
            .find(|kind| kind.spelling() == text)
    }

    /// Every spelling, for messages: `auto, secret-service, ...`.
    pub(crate) fn spellings() -> String {
        let spellings: Vec<_> = Self::ALL.iter().map(|kind| kind.spelling()).collect();
        spellings.join(", ")
    }

    /// What it is, in one line.
    pub(crate) fn about(self) -> &'static str {
        self.entry().about
    }

    /// Whether with-secrets only reads it, so that `set` cannot work.
    pub(crate) fn read_only(self) -> bool {
        self.entry().read_only
    }

    /// The store this choice opens, by the name a person uses: `auto` is
    /// the platform's keyring until it turns out not to be there.
    pub(crate) fn name(self) -> &'static str {
        self.entry().name
    }
}

/// What every store is opened with: the run's deadline, the person to ask,
/// and each store's own settings from the manifest.
#[derive(Clone)]
pub(crate) struct Settings {
    /// How long any one call to the store may take.
    pub(crate) timeout: Duration,
    /// Who is asked for a passphrase, and told what is waited for.
    pub(crate) person: &'static dyn Person,
    /// The manifest's `[vault]` table.
    pub(crate) vault: vault::Settings,
    /// The agent's socket (`WITH_SECRETS_AGENT`), which `auto` asks first.
    pub(crate) agent: Option<std::path::PathBuf>,
    /// Whether the session cache may serve and keep values (not under
    /// `--no-cache`); see `cache`.
    pub(crate) cache: bool,
}

/// Opens the store `kind` (see [`Entry::open`]). On Linux a slow store
/// (one with a `cache_identity`) comes with the session cache in front of
/// it, which does nothing until `with-secrets unlock` turns it on.
pub(crate) fn open(kind: StoreKind, settings: &Settings) -> Opened {
    let store = (kind.entry().open)(kind, settings)?;
    #[cfg(target_os = "linux")]
    if let Some(identity) = store.cache_identity() {
        let using = if settings.cache {
            super::cache::Use::On
        } else {
            super::cache::Use::Skip
        };
        return Ok(Box::new(super::cache::Cached::new(store, identity, using)));
    }
    Ok(store)
}

/// A store this platform does not have: absent, by name.
fn unsupported(kind: StoreKind, _: &Settings) -> Opened {
    Err(Common::Unsupported { store: kind.name() }.into())
}

/// What a store says of itself in `doctor`: lines of (label, text), and,
/// for a store `auto` may pick, whether it is usable (`Err` says why not).
pub(crate) struct Report {
    pub(crate) lines: Vec<(&'static str, String)>,
    pub(crate) usable: Result<(), StoreError>,
}

impl Report {
    /// Lines that say nothing of whether `auto` could pick the store.
    pub(crate) fn lines(lines: Vec<(&'static str, String)>) -> Self {
        Self {
            lines,
            usable: Ok(()),
        }
    }
}

/// What the store `kind` says of itself in `doctor`, where the runs use
/// `chosen` (see [`Entry::report`]).
pub(crate) fn report(kind: StoreKind, chosen: StoreKind, settings: &Settings) -> Option<Report> {
    (kind.entry().report)(chosen, settings)
}

/// Nothing to say in `doctor`.
fn nothing(_: StoreKind, _: &Settings) -> Option<Report> {
    None
}

/// The platform's own keyring.
pub(crate) const fn native_kind() -> StoreKind {
    #[cfg(all(unix, not(target_os = "macos")))]
    return StoreKind::SecretService;
    #[cfg(target_os = "macos")]
    return StoreKind::Keychain;
    #[cfg(windows)]
    return StoreKind::Windows;
    // No keyring of its own: one that is not here (absent), so that `auto`
    // goes on to the file store. Its errors name the Keychain, where
    // `native_name` says "none": no such platform is built.
    #[cfg(not(any(unix, windows)))]
    return StoreKind::Keychain;
}

/// The name of the platform's own keyring.
pub(crate) const fn native_name() -> &'static str {
    #[cfg(all(unix, not(target_os = "macos")))]
    return "secret-service";
    #[cfg(target_os = "macos")]
    return "keychain";
    #[cfg(windows)]
    return "windows";
    #[cfg(not(any(unix, windows)))]
    return "none";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_reads_back_as_its_kind() {
        for &kind in StoreKind::ALL {
            assert_eq!(StoreKind::from_spelling(kind.spelling()), Some(kind));
        }
        assert_eq!(StoreKind::from_spelling("openbao"), Some(StoreKind::Vault));
        assert_eq!(StoreKind::from_spelling("hashicorp"), None);
    }
}
