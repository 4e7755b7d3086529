//! The `Store` trait, which every keyring backend implements, and how one is picked.
//!
//! The primary call is a batch: [`Store::get_all`] receives every entry of the
//! manifest at once, so a backend can fetch them all over one connection with
//! as few round trips as its protocol allows.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use zeroize::Zeroizing;

use crate::secret::Secret;

pub(crate) use kind::{StoreKind, native_name};

#[cfg(all(unix, not(target_os = "macos")))]
mod dh;
mod escape;
pub(crate) mod file;
pub(crate) mod keyrings_alt;
#[cfg(target_os = "linux")]
pub(crate) mod keyutils;
mod kind;
#[cfg(test)]
pub(crate) mod memory;
#[cfg(any(target_os = "macos", windows))]
mod native;
#[cfg(all(unix, not(target_os = "macos")))]
pub(crate) mod secret_service;

/// What identifies a keyring item: the same pair Python's `keyring` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Key<'a> {
    pub(crate) service: &'a str,
    pub(crate) username: &'a str,
}

/// A value a store found for a key.
#[derive(Debug)]
pub(crate) struct Found {
    pub(crate) secret: Secret,
    /// How many items matched the key. Above 1, `secret` is the value of the
    /// most recently modified one.
    pub(crate) matches: usize,
}

/// A keyring backend.
pub(crate) trait Store {
    /// The name a person uses for this store, e.g. `secret-service`.
    fn name(&self) -> &'static str;

    /// Looks up every key in one batch. The result has one slot per key, in
    /// order; `None` means the store has no item for it.
    fn get_all(&mut self, keys: &[Key<'_>]) -> Result<Vec<Option<Found>>, StoreError>;

    /// Stores `value` for `key`, replacing what was there, so that exactly one
    /// item is left. `label` names a newly created item in keyring managers.
    fn set(&mut self, key: Key<'_>, label: &str, value: &Secret) -> Result<(), StoreError>;

    /// Removes every item for `key`; returns how many there were.
    fn delete(&mut self, key: Key<'_>) -> Result<usize, StoreError>;

    /// For `auto`: why the platform keyring was passed over, if it was.
    fn fallback_reason(&self) -> Option<&StoreError> {
        None
    }
}

/// The variables that open a whole store, not one value: the command never
/// gets them, only the values it was given.
pub(crate) const UNLOCK_VARIABLES: [&str; 2] =
    [file::PASSPHRASE_VARIABLE, keyrings_alt::PASSWORD_VARIABLE];

/// What a store may need from the person running with-secrets. Stores never
/// touch the terminal: they ask through this, and the caller decides how
/// (`term::person::Terminal`: a variable, else a prompt where there is a
/// terminal, else an error that names the variable).
pub(crate) trait Person: Sync {
    /// The passphrase or password described by `ask`.
    fn secret(&self, ask: &Ask<'_>) -> Result<Zeroizing<Vec<u8>>, StoreError>;

    /// Whether someone is at a terminal, who could answer a keyring's own
    /// dialog (and so should be given longer to).
    #[cfg_attr(
        not(all(unix, not(target_os = "macos"))),
        allow(dead_code, reason = "only the Secret Service uses it")
    )]
    fn is_present(&self) -> bool;

    /// Something the person should see now, such as what we wait for.
    #[cfg_attr(
        not(all(unix, not(target_os = "macos"))),
        allow(dead_code, reason = "only the Secret Service uses it")
    )]
    fn tell(&self, message: &str);

    /// A warning, which `-q` silences.
    fn warn(&self, message: &str);
}

/// A passphrase or password a store needs.
pub(crate) struct Ask<'a> {
    /// What it opens.
    pub(crate) path: &'a Path,
    /// The environment variable that may hold it.
    pub(crate) variable: &'static str,
    /// What to call it when asking: `Passphrase for PATH: `.
    pub(crate) prompt: String,
    /// A new one, to set: asked twice, and never empty.
    pub(crate) new: bool,
}

/// The label of an item that with-secrets creates, as keyring managers such as
/// Seahorse and KeePassXC show it.
pub(crate) fn label(name: &str, key: Key<'_>) -> String {
    format!("{name} (with-secrets: {} / {})", key.service, key.username)
}

/// Opens a store. This must be cheap and must not block: a backend that
/// talks to a daemon only starts talking to it when first used.
pub(crate) fn open(
    kind: StoreKind,
    timeout: Duration,
    person: &'static dyn Person,
) -> Result<Box<dyn Store>, StoreError> {
    match kind {
        StoreKind::Auto => Ok(Box::new(Auto::new(timeout, person))),
        StoreKind::File => Ok(Box::new(file::FileStore::open(timeout, person)?)),
        StoreKind::KeyringsAlt => Ok(Box::new(keyrings_alt::KeyringsAlt::open(person)?)),
        #[cfg(target_os = "linux")]
        StoreKind::Keyutils => Ok(Box::new(keyutils::Keyutils::open()?)),
        other if other.name() == native_name() => open_native(timeout, person),
        other => Err(StoreError::Unsupported {
            store: other.name(),
        }),
    }
}

/// `auto`: the platform's keyring when one answers, else the file store.
///
/// On Linux "answers" means a session bus on which something owns (or can
/// be started as) `org.freedesktop.secrets`. That is only known after the
/// first call, so the choice is made then: the first batch goes to the
/// Secret Service, and only an error that says no keyring daemon is there
/// (no bus, no reachable bus, no service) sends it, and everything after
/// it, to the file store. A locked, hung or refusing keyring stays an error:
/// silently using another store would hide it.
struct Auto {
    timeout: Duration,
    person: &'static dyn Person,
    chosen: Option<Box<dyn Store>>,
    /// Why the native keyring was passed over, for `doctor`.
    reason: Option<StoreError>,
}

impl Auto {
    fn new(timeout: Duration, person: &'static dyn Person) -> Self {
        Self {
            timeout,
            person,
            chosen: None,
            reason: None,
        }
    }

    fn with<T>(
        &mut self,
        mut call: impl FnMut(&mut dyn Store) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if let Some(store) = &mut self.chosen {
            return call(store.as_mut());
        }
        let native = open_native(self.timeout, self.person).and_then(|mut store| {
            let result = call(store.as_mut());
            result.map(|value| (store, value))
        });
        match native {
            Ok((store, value)) => {
                self.chosen = Some(store);
                Ok(value)
            }
            Err(err) if err.means_absent() => {
                let mut store: Box<dyn Store> =
                    Box::new(file::FileStore::open(self.timeout, self.person)?);
                let value = call(store.as_mut());
                self.chosen = Some(store);
                self.reason = Some(err);
                value
            }
            Err(err) => Err(err),
        }
    }
}

impl Store for Auto {
    fn name(&self) -> &'static str {
        self.chosen
            .as_ref()
            .map_or(native_name(), |store| store.name())
    }

    fn get_all(&mut self, keys: &[Key<'_>]) -> Result<Vec<Option<Found>>, StoreError> {
        self.with(|store| store.get_all(keys))
    }

    fn set(&mut self, key: Key<'_>, label: &str, value: &Secret) -> Result<(), StoreError> {
        self.with(|store| store.set(key, label, value))
    }

    fn delete(&mut self, key: Key<'_>) -> Result<usize, StoreError> {
        self.with(|store| store.delete(key))
    }

    fn fallback_reason(&self) -> Option<&StoreError> {
        self.reason.as_ref()
    }
}

fn open_native(
    timeout: Duration,
    person: &'static dyn Person,
) -> Result<Box<dyn Store>, StoreError> {
    #[cfg(all(unix, not(target_os = "macos")))]
    return Ok(Box::new(secret_service::SecretService::connect(
        timeout, person,
    )?));
    #[cfg(any(target_os = "macos", windows))]
    return {
        let _ = (timeout, person);
        Ok(Box::new(native::Native::open()?))
    };
    #[cfg(not(any(unix, windows)))]
    return {
        let _ = (timeout, person);
        Err(StoreError::Unsupported {
            store: native_name(),
        })
    };
}

/// Why a store could not do what was asked. Each message says what to do next.
/// None of them carries a secret value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// No D-Bus session bus address is known.
    NoSessionBus,
    /// The session bus address is known, but connecting to it failed.
    Connect { address: String, reason: String },
    /// Nothing on the session bus owns `org.freedesktop.secrets`.
    NoService,
    /// The items or collection are locked, and stayed locked after asking.
    Locked { daemon: Daemon },
    /// The unlock prompt was dismissed, or could not be shown.
    UnlockDismissed { daemon: Daemon },
    /// A prompt the daemon returned (to unlock, or to confirm a change) did
    /// not complete in time: a dialog may be waiting for a person.
    PromptTimedOut { daemon: Daemon, after: Duration },
    /// There is no default collection to create an item in.
    NoDefaultCollection { daemon: Daemon },
    /// The store refused access.
    Denied(String),
    /// The store did not answer within the deadline.
    TimedOut { after: Duration, daemon: Daemon },
    /// The store answered something that makes no sense.
    Protocol(String),
    /// A platform keyring (Keychain, Credential Manager) reported an error.
    Platform(String),
    /// The store cannot be written.
    ReadOnly { store: &'static str },
    /// The store does not exist on this platform.
    Unsupported { store: &'static str },
    /// A store file cannot be read or makes no sense.
    Unreadable { path: PathBuf, reason: String },
    /// An encrypted store file needs a password and none can be asked for.
    NeedPassword {
        path: PathBuf,
        variable: &'static str,
    },
    /// The password does not open an encrypted store file.
    BadPassword {
        path: PathBuf,
        variable: &'static str,
    },
    /// The store cannot work on this machine, e.g. a blocked system call.
    Unavailable { store: &'static str, reason: String },
}

/// The program that answers as the Secret Service, so that advice names it
/// and says what works for it: "unlock it in Seahorse" helps nobody who runs
/// KeePassXC. Found only when an error needs it (see `secret_service`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Daemon {
    /// Not known: not looked up, or the lookup failed.
    #[default]
    Unknown,
    GnomeKeyring,
    KeePassXc,
    Oo7,
    KWallet,
    /// Another program, by its process name.
    Other(String),
}

impl Daemon {
    /// The daemon whose process name (`/proc/PID/comm`, at most 15 bytes) is `program`.
    #[cfg_attr(
        not(all(unix, not(target_os = "macos"))),
        allow(dead_code, reason = "only the Secret Service uses it")
    )]
    pub(crate) fn from_program(program: &str) -> Self {
        match program.trim() {
            // "gnome-keyring-daemon", cut to 15 bytes by the kernel.
            "gnome-keyring-d" | "gnome-keyring-daemon" => Self::GnomeKeyring,
            "keepassxc" | "KeePassXC" => Self::KeePassXc,
            "oo7-daemon" => Self::Oo7,
            "kwalletd" | "kwalletd5" | "kwalletd6" | "ksecretd" => Self::KWallet,
            "" => Self::Unknown,
            other => Self::Other(other.to_owned()),
        }
    }

    /// What a person calls it.
    pub(crate) fn name(&self) -> String {
        match self {
            Self::Unknown => "your keyring daemon".to_owned(),
            Self::GnomeKeyring => "gnome-keyring".to_owned(),
            Self::KeePassXc => "KeePassXC".to_owned(),
            Self::Oo7 => "oo7-daemon".to_owned(),
            Self::KWallet => "KWallet".to_owned(),
            Self::Other(program) => format!("your keyring daemon ({program})"),
        }
    }

    /// How to unlock its default collection by hand.
    fn unlock_advice(&self) -> String {
        match self {
            Self::GnomeKeyring => "e.g. in Seahorse, or: printf %s \"$PASSWORD\" | \
                                   gnome-keyring-daemon --unlock"
                .to_owned(),
            Self::KeePassXc => "unlock the database in KeePassXC".to_owned(),
            Self::Oo7 => "with your desktop's unlock prompt, or start oo7-daemon with \
                          --login and the password on standard input"
                .to_owned(),
            Self::KWallet => "open the wallet in KWalletManager".to_owned(),
            Self::Unknown | Self::Other(_) => format!("with {}'s own tools", self.name()),
        }
    }

    /// What to do about a daemon that does not answer in time.
    fn hung_advice(&self) -> String {
        match self {
            Self::GnomeKeyring => "check it (e.g. restart gnome-keyring-daemon)".to_owned(),
            Self::KeePassXc => "check KeePassXC for an open dialog, or restart it".to_owned(),
            Self::Oo7 => "check it (e.g. restart oo7-daemon)".to_owned(),
            Self::KWallet => "check it (e.g. restart kwalletd)".to_owned(),
            Self::Unknown | Self::Other(_) => format!("check {} (or restart it)", self.name()),
        }
    }

    /// What to do about a prompt that nobody answered.
    fn prompt_advice(&self) -> String {
        match self {
            Self::KeePassXc => "answer it in KeePassXC; to stop KeePassXC asking, turn off its \
                                confirmations (Settings, Secret Service Integration, \
                                \"Confirm when passwords are retrieved by clients\" and \
                                \"Confirm when clients request entry deletion\")"
                .to_owned(),
            other => format!("answer it, or {}", other.unlock_advice()),
        }
    }

    /// How to get a default collection.
    fn collection_advice(&self) -> String {
        match self {
            Self::GnomeKeyring => "create a default keyring, e.g. in Seahorse".to_owned(),
            Self::KeePassXc => "in KeePassXC, enable Secret Service integration and expose a \
                                group of an open database to it (Database settings, Secret \
                                Service Integration)"
                .to_owned(),
            Self::KWallet => "create a wallet in KWalletManager".to_owned(),
            other => format!(
                "create a default collection with {}'s own tools",
                other.name()
            ),
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoSessionBus => f.write_str(
                "no D-Bus session bus: DBUS_SESSION_BUS_ADDRESS is not set and \
                 $XDG_RUNTIME_DIR/bus does not exist\n  start one for this shell with: \
                 dbus-run-session -- $SHELL (and run gnome-keyring-daemon in it)",
            ),
            Self::Connect { address, reason } => write!(
                f,
                "cannot connect to the D-Bus session bus at {address}: {reason}\n  \
                 check DBUS_SESSION_BUS_ADDRESS, or unset it if the bus is gone"
            ),
            Self::NoService => f.write_str(
                "no Secret Service on the session bus (nothing owns org.freedesktop.secrets)\n  \
                 start one, e.g.: gnome-keyring-daemon --start --components=secrets, or \
                 KeePassXC with its Secret Service integration enabled",
            ),
            Self::Locked { daemon } => write!(
                f,
                "the keyring is locked, and {} left it locked when asked to unlock it\n  \
                 unlock it ({}), then run this again",
                daemon.name(),
                daemon.unlock_advice()
            ),
            Self::UnlockDismissed { daemon } => write!(
                f,
                "the keyring is locked, and {}'s unlock prompt was dismissed or could not \
                 be shown\n  unlock it ({}), then run this again",
                daemon.name(),
                daemon.unlock_advice()
            ),
            Self::PromptTimedOut { daemon, after } => write!(
                f,
                "{} did not finish its prompt within {} s: a dialog may be waiting for an \
                 answer\n  {}, then run this again (--timeout gives it longer)",
                daemon.name(),
                after.as_secs_f32(),
                daemon.prompt_advice()
            ),
            Self::NoDefaultCollection { daemon } => write!(
                f,
                "{} has no default collection to store items in\n  {}",
                daemon.name(),
                daemon.collection_advice()
            ),
            Self::Denied(reason) => write!(
                f,
                "access denied: {reason}\n  allow with-secrets in your keyring's access \
                 settings, then run this again"
            ),
            Self::TimedOut { after, daemon } => write!(
                f,
                "no answer within {} s; {} may be hung or waiting on a prompt\n  \
                 {}, then run this again",
                after.as_secs_f32(),
                match daemon {
                    Daemon::Unknown => "the keyring daemon".to_owned(),
                    other => other.name(),
                },
                daemon.hung_advice()
            ),
            Self::Protocol(reason) => write!(f, "unexpected answer: {reason}"),
            Self::Platform(reason) => f.write_str(reason),
            Self::ReadOnly { store } => write!(
                f,
                "{store} is read-only: with-secrets only reads it\n  \
                 store values in your keyring instead, e.g.: with-secrets --store auto set NAME"
            ),
            Self::Unsupported { store } => write!(
                f,
                "{store} is not available on this platform\n  \
                 leave out --store (and WITH_SECRETS_STORE) to use the platform's keyring"
            ),
            Self::Unreadable { path, reason } => {
                write!(f, "cannot read {}: {reason}", path.display())
            }
            Self::NeedPassword { path, variable } => write!(
                f,
                "{} is encrypted, and there is no terminal to ask for its password\n  \
                 set {variable} to its password",
                path.display(),
            ),
            Self::BadPassword { path, variable } => write!(
                f,
                "the password does not open {}; nothing was changed\n  \
                 check {variable} (or what you typed) against the one the file was made with",
                path.display(),
            ),
            Self::Unavailable { reason, .. } => write!(f, "cannot be used here: {reason}"),
        }
    }
}

impl StoreError {
    /// The same error, naming `daemon` in its advice, if it gives any.
    #[cfg_attr(
        not(all(unix, not(target_os = "macos"))),
        allow(dead_code, reason = "only the Secret Service uses it")
    )]
    pub(crate) fn for_daemon(mut self, named: Daemon) -> Self {
        if let Some(daemon) = self.daemon_mut() {
            *daemon = named;
        }
        self
    }

    /// Whether the message would name the daemon, were it known.
    #[cfg_attr(
        not(all(unix, not(target_os = "macos"))),
        allow(dead_code, reason = "only the Secret Service uses it")
    )]
    pub(crate) fn names_daemon(&self) -> bool {
        matches!(
            self,
            Self::Locked { .. }
                | Self::UnlockDismissed { .. }
                | Self::PromptTimedOut { .. }
                | Self::NoDefaultCollection { .. }
                | Self::TimedOut { .. }
        )
    }

    #[cfg_attr(
        not(all(unix, not(target_os = "macos"))),
        allow(dead_code, reason = "only the Secret Service uses it")
    )]
    fn daemon_mut(&mut self) -> Option<&mut Daemon> {
        match self {
            Self::Locked { daemon }
            | Self::UnlockDismissed { daemon }
            | Self::PromptTimedOut { daemon, .. }
            | Self::NoDefaultCollection { daemon }
            | Self::TimedOut { daemon, .. } => Some(daemon),
            _ => None,
        }
    }

    /// Whether this says there is no store here at all, as opposed to one
    /// that is there but fails (locked, hung, refusing, a wrong passphrase,
    /// a damaged file). Only then may anything stand in for the store: `auto`
    /// passes over an absent platform keyring for the file store, and a run
    /// takes same-named variables from the environment (the CI case). A store
    /// that is there but fails must stay an error, or a stale value wins.
    ///
    /// Every variant is named, so a new one must be classed here.
    pub(crate) fn means_absent(&self) -> bool {
        match self {
            // No session bus, nothing listening on it, nothing owning the
            // Secret Service name (or able to be started as it).
            Self::NoSessionBus | Self::Connect { .. } | Self::NoService => true,
            // A store this platform, or this machine, cannot have: the
            // kernel keyring blocked by a container's seccomp profile, no
            // HOME to put a file store in.
            Self::Unsupported { .. } | Self::Unavailable { .. } => true,
            Self::Locked { .. }
            | Self::UnlockDismissed { .. }
            | Self::PromptTimedOut { .. }
            | Self::NoDefaultCollection { .. }
            | Self::Denied(_)
            | Self::TimedOut { .. }
            | Self::Protocol(_)
            | Self::Platform(_)
            | Self::ReadOnly { .. }
            | Self::Unreadable { .. }
            | Self::NeedPassword { .. }
            | Self::BadPassword { .. } => false,
        }
    }
}

impl std::error::Error for StoreError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_store_that_is_not_here_at_all_means_absent() {
        let daemon = || Daemon::Unknown;
        let path = || PathBuf::from("f");
        let absent = [
            StoreError::NoSessionBus,
            StoreError::Connect {
                address: "a".into(),
                reason: "r".into(),
            },
            StoreError::NoService,
            StoreError::Unsupported { store: "keychain" },
            StoreError::Unavailable {
                store: "keyutils",
                reason: "seccomp".into(),
            },
        ];
        let failing = [
            StoreError::Locked { daemon: daemon() },
            StoreError::UnlockDismissed { daemon: daemon() },
            StoreError::PromptTimedOut {
                daemon: daemon(),
                after: Duration::ZERO,
            },
            StoreError::NoDefaultCollection { daemon: daemon() },
            StoreError::Denied("no".into()),
            StoreError::TimedOut {
                after: Duration::ZERO,
                daemon: daemon(),
            },
            StoreError::Protocol("p".into()),
            StoreError::Platform("p".into()),
            StoreError::ReadOnly {
                store: "keyrings-alt",
            },
            StoreError::Unreadable {
                path: path(),
                reason: "damaged".into(),
            },
            StoreError::NeedPassword {
                path: path(),
                variable: "V",
            },
            StoreError::BadPassword {
                path: path(),
                variable: "V",
            },
        ];
        for err in absent {
            assert!(err.means_absent(), "{err:?}");
        }
        for err in failing {
            assert!(!err.means_absent(), "{err:?}");
        }
    }

    #[test]
    fn daemons_are_known_by_their_process_names() {
        for (program, daemon) in [
            ("gnome-keyring-d", Daemon::GnomeKeyring),
            ("keepassxc", Daemon::KeePassXc),
            ("oo7-daemon", Daemon::Oo7),
            ("kwalletd6", Daemon::KWallet),
            ("ksecretd", Daemon::KWallet),
            ("", Daemon::Unknown),
            ("pass-secret-ser", Daemon::Other("pass-secret-ser".into())),
        ] {
            assert_eq!(Daemon::from_program(program), daemon, "{program}");
        }
    }

    #[test]
    fn advice_names_the_daemon_that_answers() {
        let locked = |daemon| StoreError::Locked { daemon }.to_string();
        assert!(locked(Daemon::GnomeKeyring).contains("gnome-keyring-daemon --unlock"));
        assert!(locked(Daemon::KeePassXc).contains("unlock the database in KeePassXC"));
        assert!(!locked(Daemon::KeePassXc).contains("gnome-keyring"));
        assert!(locked(Daemon::KWallet).contains("KWalletManager"));
        assert!(locked(Daemon::Other("secretd".into())).contains("your keyring daemon (secretd)"));
        let prompt = StoreError::PromptTimedOut {
            daemon: Daemon::Oo7,
            after: Duration::from_millis(1500),
        }
        .to_string();
        assert!(
            prompt.starts_with(
                "oo7-daemon did not finish its prompt within 1.5 s: a dialog may be waiting"
            ),
            "{prompt}"
        );
    }

    #[test]
    fn for_daemon_fills_in_only_errors_that_give_advice() {
        let named = StoreError::TimedOut {
            after: Duration::from_secs(1),
            daemon: Daemon::Unknown,
        }
        .for_daemon(Daemon::KeePassXc);
        assert!(
            named.to_string().contains("KeePassXC may be hung"),
            "{named}"
        );
        assert_eq!(
            StoreError::NoService.for_daemon(Daemon::KeePassXc),
            StoreError::NoService
        );
        assert!(!StoreError::NoService.names_daemon());
    }
}
