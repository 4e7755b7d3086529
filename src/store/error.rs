//! Why a store could not do what was asked, each with the next step, and
//! which of those mean there is no store here at all.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

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
    /// A prompt the daemon returned to confirm a change did not complete in
    /// time: a dialog may be waiting for a person.
    PromptTimedOut { daemon: Daemon, after: Duration },
    /// The items or collection are locked, and the daemon's unlock prompt
    /// did not complete in time: its dialog may be waiting for a password.
    UnlockTimedOut { daemon: Daemon, after: Duration },
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
    /// A store file that does not exist yet needs a new passphrase to be
    /// made with, and none can be asked for.
    NeedNewPassword {
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
    /// No Windows helper here (`windows` from Linux): no with-secrets.exe on
    /// PATH, no WSL.
    HelperMissing { reason: String },
    /// The Windows helper started (or was found) but failed.
    HelperFailed { command: String, reason: String },
    /// The Windows helper did not answer within the deadline; it was killed.
    HelperTimedOut { command: String, after: Duration },
    /// The Windows helper is another version of with-secrets.
    HelperMismatch {
        command: String,
        /// Its version and protocol (boxed: this enum stays small).
        theirs: Box<str>,
        /// Whether the helper is the older one, to update.
        update_helper: bool,
    },
    /// The store behind the Windows helper reported an error.
    Remote { message: String },
    /// A value this store cannot hold (the Windows Credential Manager: not
    /// UTF-8, or longer than its blob). `what` is the entry's label, which
    /// starts with the variable's name.
    Unstorable { what: String, reason: String },
    /// A Vault or OpenBao server, or what is needed to reach it, failed;
    /// the reason says which way and what to do.
    Server { reason: String },
    /// Generating values failed: `names` are the entries, `cause` why, and
    /// `storing` whether it was the write (else the second lookup, after
    /// waiting for another run that was generating values).
    Generated {
        names: String,
        storing: bool,
        cause: Box<StoreError>,
    },
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

    /// What is locked, as this daemon calls it.
    fn locked_what(&self) -> &'static str {
        match self {
            Self::KeePassXc => "the KeePassXC database",
            Self::KWallet => "the wallet",
            _ => "the keyring",
        }
    }

    /// How to unlock its default collection by hand.
    fn unlock_advice(&self) -> String {
        match self {
            Self::GnomeKeyring => "e.g. in Seahorse, or: printf %s \"$PASSWORD\" | \
                                   gnome-keyring-daemon --unlock"
                .to_owned(),
            Self::KeePassXc => "type its password in KeePassXC's unlock dialog, or unlock the \
                                database in KeePassXC's window"
                .to_owned(),
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
            Self::UnlockTimedOut { daemon, after } => write!(
                f,
                "{} is locked, and {}'s unlock dialog got no answer within {} s: it may still \
                 be waiting for the password\n  unlock it ({}), then run this again \
                 (--timeout gives the dialog longer)",
                daemon.locked_what(),
                daemon.name(),
                after.as_secs_f32(),
                daemon.unlock_advice()
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
                "{store} is read-only: with-secrets only reads it, and changes nothing in it\n  \
                 to move off it, copy what it has into a writable store: \
                 with-secrets --store auto import --from {store}"
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
            Self::NeedNewPassword { path, variable } => write!(
                f,
                "{} does not exist yet, and there is no terminal to ask for the new passphrase \
                 that will encrypt it\n  create it without a terminal: set {variable} to a new \
                 passphrase and run this again (or run this on a terminal)",
                path.display(),
            ),
            Self::BadPassword { path, variable } => write!(
                f,
                "the password does not open {}; nothing was changed\n  \
                 check {variable} (or what you typed) against the one the file was made with",
                path.display(),
            ),
            Self::Unavailable { reason, .. } => write!(f, "cannot be used here: {reason}"),
            Self::HelperMissing { reason } => write!(
                f,
                "no Windows helper: {reason}\n  on WSL, put the Windows build of with-secrets \
                 (with-secrets.exe) on the Windows PATH, or set WITH_SECRETS_WINDOWS_HELPER"
            ),
            Self::HelperFailed { command, reason } => {
                write!(f, "the Windows helper ({command}) failed: {reason}")
            }
            Self::HelperTimedOut { command, after } => write!(
                f,
                "the Windows helper ({command}) did not answer within {} s, and was stopped\n  \
                 check that it runs (e.g. `with-secrets.exe doctor` in Windows), or give it \
                 longer with --timeout",
                after.as_secs_f32()
            ),
            Self::HelperMismatch {
                command,
                theirs,
                update_helper,
            } => write!(
                f,
                "the Windows helper ({command}) is with-secrets {theirs}, but this is \
                 with-secrets {}, protocol {}\n  {}",
                super::bridge::wire::VERSION,
                super::bridge::wire::PROTOCOL,
                if *update_helper {
                    "update the Windows build (with-secrets.exe) to this version"
                } else {
                    "update this (Linux) with-secrets to the Windows build's version"
                }
            ),
            Self::Remote { message } => write!(f, "the Windows side reports: {message}"),
            Self::Unstorable { what, reason } => write!(
                f,
                "cannot store {what}: {reason}; nothing was changed\n  \
                 store a shorter value, or use another store (--store file)"
            ),
            Self::Server { reason } => f.write_str(reason),
            Self::Generated {
                names,
                storing: true,
                cause,
            } => write!(f, "cannot store the value generated for {names}: {cause}"),
            Self::Generated { names, cause, .. } => write!(
                f,
                "cannot look again for {names} before generating their values: {cause}"
            ),
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
                | Self::UnlockTimedOut { .. }
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
            | Self::UnlockTimedOut { daemon, .. }
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
            // No Windows helper to run: not on WSL, or nothing installed on
            // the Windows side. One that runs but fails, hangs or is another
            // version is a store that is there but fails.
            Self::HelperMissing { .. } => true,
            Self::Locked { .. }
            | Self::UnlockDismissed { .. }
            | Self::PromptTimedOut { .. }
            | Self::UnlockTimedOut { .. }
            | Self::NoDefaultCollection { .. }
            | Self::Denied(_)
            | Self::TimedOut { .. }
            | Self::Protocol(_)
            | Self::Platform(_)
            | Self::ReadOnly { .. }
            | Self::Unreadable { .. }
            | Self::NeedPassword { .. }
            | Self::NeedNewPassword { .. }
            | Self::BadPassword { .. }
            | Self::HelperFailed { .. }
            | Self::HelperTimedOut { .. }
            | Self::HelperMismatch { .. }
            | Self::Remote { .. }
            | Self::Unstorable { .. }
            | Self::Server { .. }
            | Self::Generated { .. } => false,
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
            StoreError::HelperMissing {
                reason: "not on PATH".into(),
            },
        ];
        let failing = [
            StoreError::Locked { daemon: daemon() },
            StoreError::UnlockDismissed { daemon: daemon() },
            StoreError::PromptTimedOut {
                daemon: daemon(),
                after: Duration::ZERO,
            },
            StoreError::UnlockTimedOut {
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
            StoreError::Unstorable {
                what: "N".into(),
                reason: "too long".into(),
            },
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
            StoreError::NeedNewPassword {
                path: path(),
                variable: "V",
            },
            StoreError::BadPassword {
                path: path(),
                variable: "V",
            },
            StoreError::HelperFailed {
                command: "c".into(),
                reason: "exit 1".into(),
            },
            StoreError::HelperTimedOut {
                command: "c".into(),
                after: Duration::ZERO,
            },
            StoreError::HelperMismatch {
                command: "c".into(),
                theirs: "0.0.1".into(),
                update_helper: true,
            },
            StoreError::Remote {
                message: "locked".into(),
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
        // An unlock dialog is no confirmation that a setting turns off.
        let unlock = StoreError::UnlockTimedOut {
            daemon: Daemon::KeePassXc,
            after: Duration::from_secs(1),
        }
        .to_string();
        assert!(
            unlock.starts_with("the KeePassXC database is locked, and KeePassXC's unlock dialog"),
            "{unlock}"
        );
        assert!(!unlock.contains("confirmations"), "{unlock}");
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
