//! Which store: the names a person gives in `--store`, `WITH_SECRETS_STORE`
//! and the manifest's `store`, and what each one is.

/// A store to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoreKind {
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

impl StoreKind {
    /// Every kind, in the order help lists them.
    pub(crate) const ALL: [Self; 8] = [
        Self::Auto,
        Self::SecretService,
        Self::Keychain,
        Self::Windows,
        Self::File,
        Self::Keyutils,
        Self::KeyringsAlt,
        Self::Vault,
    ];

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
        Self::ALL.into_iter().find(|kind| kind.spelling() == text)
    }

    /// Every spelling, for messages: `auto, secret-service, ...`.
    pub(crate) fn spellings() -> String {
        Self::ALL.map(Self::spelling).join(", ")
    }

    /// What it is, in one line.
    pub(crate) fn about(self) -> &'static str {
        match self {
            Self::Auto => {
                "The platform's keyring (secret-service, keychain or windows) when it answers, \
                 else file"
            }
            Self::SecretService => {
                "The freedesktop Secret Service (gnome-keyring, KeePassXC, oo7-daemon, KWallet): \
                 Linux, BSD"
            }
            Self::Keychain => "The macOS Keychain",
            Self::Windows => "The Windows Credential Manager",
            Self::File => {
                "An encrypted file (age format) in $XDG_DATA_HOME/with-secrets; needs no daemon"
            }
            Self::Keyutils => "The Linux kernel keyring: fast, no daemon, but cleared on reboot",
            Self::KeyringsAlt => {
                "Python keyrings.alt's files, read-only, to use and import what is in them"
            }
            Self::Vault => {
                "A HashiCorp Vault or OpenBao server (KV v2), at BAO_ADDR or VAULT_ADDR \
                 (also: openbao)"
            }
        }
    }

    /// Whether with-secrets only reads it, so that `set` cannot work.
    pub(crate) fn read_only(self) -> bool {
        self == Self::KeyringsAlt
    }

    /// The store this choice opens, by the name a person uses: `auto` is
    /// the platform's keyring until it turns out not to be there.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Auto => native_name(),
            Self::SecretService => "secret-service",
            Self::Keychain => "keychain",
            Self::Windows => "windows",
            Self::File => "file",
            Self::Keyutils => "keyutils",
            Self::KeyringsAlt => "keyrings-alt",
            Self::Vault => "vault",
        }
    }
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
        for kind in StoreKind::ALL {
            assert_eq!(StoreKind::from_spelling(kind.spelling()), Some(kind));
        }
        assert_eq!(StoreKind::from_spelling("openbao"), Some(StoreKind::Vault));
        assert_eq!(StoreKind::from_spelling("hashicorp"), None);
    }
}
