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
}

/// What a kind of store is.
struct Info {
    /// The name a person uses for the store it opens.
    name: &'static str,
    /// What it is, in one line.
    about: &'static str,
    /// Whether with-secrets only reads it, so that `set` cannot work.
    read_only: bool,
}

impl StoreKind {
    fn info(self) -> Info {
        let (name, about, read_only) = match self {
            // `auto` is the platform's keyring until it turns out not to
            // be there.
            Self::Auto => (
                native_name(),
                "The platform's keyring (secret-service, keychain or windows) when it answers, \
                 else file",
                false,
            ),
            Self::SecretService => (
                "secret-service",
                "The freedesktop Secret Service (gnome-keyring, KeePassXC, oo7-daemon, KWallet): \
                 Linux, BSD",
                false,
            ),
            Self::Keychain => ("keychain", "The macOS Keychain", false),
            Self::Windows => ("windows", "The Windows Credential Manager", false),
            Self::File => (
                "file",
                "An encrypted file (age format) in $XDG_DATA_HOME/with-secrets; needs no daemon",
                false,
            ),
            Self::Keyutils => (
                "keyutils",
                "The Linux kernel keyring: fast, no daemon, but cleared on reboot",
                false,
            ),
            Self::KeyringsAlt => (
                "keyrings-alt",
                "Python keyrings.alt's files, read-only, to use and import what is in them",
                true,
            ),
            Self::Vault => (
                "vault",
                "A HashiCorp Vault or OpenBao server (KV v2), at BAO_ADDR or VAULT_ADDR \
                 (also: openbao)",
                false,
            ),
        };
        Info {
            name,
            about,
            read_only,
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
        self.info().about
    }

    /// Whether with-secrets only reads it, so that `set` cannot work.
    pub(crate) fn read_only(self) -> bool {
        self.info().read_only
    }

    /// The store this choice opens, by the name a person uses: `auto` is
    /// the platform's keyring until it turns out not to be there.
    pub(crate) fn name(self) -> &'static str {
        self.info().name
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
}

/// Opens the store `kind`. This must be cheap and must not block: a store
/// that talks to a daemon or a server starts talking when first used.
pub(crate) fn open(kind: StoreKind, settings: &Settings) -> Result<Box<dyn Store>, StoreError> {
    match kind {
        StoreKind::Auto => Ok(Box::new(auto::Auto::new(settings))),
        #[cfg(all(unix, not(target_os = "macos")))]
        StoreKind::SecretService => Ok(Box::new(super::secret_service::SecretService::connect(
            settings,
        )?)),
        #[cfg(not(all(unix, not(target_os = "macos"))))]
        StoreKind::SecretService => unsupported(kind),
        #[cfg(target_os = "macos")]
        StoreKind::Keychain => Ok(Box::new(super::native::Native::open()?)),
        #[cfg(not(target_os = "macos"))]
        StoreKind::Keychain => unsupported(kind),
        #[cfg(windows)]
        StoreKind::Windows => Ok(Box::new(super::windows::Windows::open())),
        // The Windows Credential Manager from WSL, through the Windows build.
        #[cfg(target_os = "linux")]
        StoreKind::Windows => Ok(Box::new(super::bridge::Bridge::open(settings))),
        #[cfg(not(any(windows, target_os = "linux")))]
        StoreKind::Windows => unsupported(kind),
        StoreKind::File => Ok(Box::new(file::FileStore::open(settings)?)),
        #[cfg(target_os = "linux")]
        StoreKind::Keyutils => Ok(Box::new(super::keyutils::Keyutils::open()?)),
        #[cfg(not(target_os = "linux"))]
        StoreKind::Keyutils => unsupported(kind),
        StoreKind::KeyringsAlt => Ok(Box::new(keyrings_alt::KeyringsAlt::open(settings)?)),
        StoreKind::Vault => Ok(Box::new(vault::Vault::open(settings))),
    }
}

#[cfg_attr(
    all(target_os = "linux", not(test)),
    allow(dead_code, reason = "Linux has every store but the Keychain")
)]
fn unsupported(kind: StoreKind) -> Result<Box<dyn Store>, StoreError> {
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

/// What the store `kind` says of itself, if it is worth saying where the
/// runs use `chosen`: every store this platform has, but vault only when
/// chosen (it would ask a server), and the Windows helper only where it
/// could be used.
pub(crate) fn report(kind: StoreKind, chosen: StoreKind, settings: &Settings) -> Option<Report> {
    match kind {
        // `auto` is told through the stores it picks from.
        StoreKind::Auto => None,
        #[cfg(all(unix, not(target_os = "macos")))]
        StoreKind::SecretService => Some(super::secret_service::report(settings)),
        #[cfg(target_os = "macos")]
        StoreKind::Keychain => Some(Report::lines(vec![("keychain:", "built in".to_owned())])),
        #[cfg(windows)]
        StoreKind::Windows => Some(Report::lines(vec![("windows:", "built in".to_owned())])),
        #[cfg(target_os = "linux")]
        StoreKind::Windows => super::bridge::report(chosen == StoreKind::Windows, settings),
        #[cfg(not(all(unix, not(target_os = "macos"))))]
        StoreKind::SecretService => None,
        #[cfg(not(target_os = "macos"))]
        StoreKind::Keychain => None,
        #[cfg(not(any(windows, target_os = "linux")))]
        StoreKind::Windows => None,
        StoreKind::File => Some(Report::lines(file::doctor::report(settings))),
        #[cfg(target_os = "linux")]
        StoreKind::Keyutils => Some(super::keyutils::report()),
        #[cfg(not(target_os = "linux"))]
        StoreKind::Keyutils => None,
        StoreKind::KeyringsAlt => Some(Report::lines(keyrings_alt::report(settings))),
        StoreKind::Vault => {
            (chosen == StoreKind::Vault).then(|| Report::lines(vault::report(settings)))
        }
    }
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
    // goes on to the file store.
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
