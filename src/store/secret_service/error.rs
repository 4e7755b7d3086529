//! The Secret Service's own errors, and the daemon that answers as it,
//! so that advice names the program a person runs.

use std::fmt;
use std::time::Duration;

use crate::store::StoreError;
use crate::store::error::{Class, Fault};

/// Why the Secret Service could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Error {
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
}

impl Fault for Error {
    fn class(&self) -> Class {
        match self {
            // No session bus, nothing listening on it, nothing owning the
            // Secret Service name (or able to be started as it).
            Self::NoSessionBus | Self::Connect { .. } | Self::NoService => Class::Absent,
            Self::Locked { .. } | Self::UnlockDismissed { .. } | Self::UnlockTimedOut { .. } => {
                Class::Locked
            }
            Self::Denied(_) => Class::Denied,
            Self::PromptTimedOut { .. } | Self::TimedOut { .. } => Class::TimedOut,
            Self::NoDefaultCollection { .. } | Self::Protocol(_) => Class::Failed,
        }
    }
}

/// The program that answers as the Secret Service, so that advice names it
/// and says what works for it: "unlock it in Seahorse" helps nobody who runs
/// KeePassXC. Found only when an error needs it (see `secret_service`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum Daemon {
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

impl fmt::Display for Error {
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
        }
    }
}

/// `err`, naming `daemon` in its advice if it is the Secret Service's own
/// error and gives any.
pub(crate) fn for_daemon(err: StoreError, named: Daemon) -> StoreError {
    match err.fault::<Error>() {
        Some(own) if own.names_daemon() => own.clone().for_daemon(named).into(),
        _ => err,
    }
}

/// Whether `err` says the items or collection are locked, and may be
/// unlocked by asking.
pub(super) fn is_locked(err: &StoreError) -> bool {
    matches!(err.fault::<Error>(), Some(Error::Locked { .. }))
}

/// Whether `err` is the Secret Service's own, and its message would name
/// the daemon, were it known.
pub(super) fn names_daemon(err: &StoreError) -> bool {
    err.fault::<Error>().is_some_and(Error::names_daemon)
}

impl Error {
    /// The same error, naming `daemon` in its advice, if it gives any.
    fn for_daemon(mut self, named: Daemon) -> Self {
        if let Some(daemon) = self.daemon_mut() {
            *daemon = named;
        }
        self
    }

    /// Whether the message would name the daemon, were it known.
    fn names_daemon(&self) -> bool {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_no_bus_and_no_service_mean_absent() {
        let daemon = || Daemon::Unknown;
        let absent = [
            Error::NoSessionBus,
            Error::Connect {
                address: "a".into(),
                reason: "r".into(),
            },
            Error::NoService,
        ];
        let failing = [
            (Error::Locked { daemon: daemon() }, Class::Locked),
            (Error::UnlockDismissed { daemon: daemon() }, Class::Locked),
            (
                Error::UnlockTimedOut {
                    daemon: daemon(),
                    after: Duration::ZERO,
                },
                Class::Locked,
            ),
            (
                Error::PromptTimedOut {
                    daemon: daemon(),
                    after: Duration::ZERO,
                },
                Class::TimedOut,
            ),
            (
                Error::TimedOut {
                    after: Duration::ZERO,
                    daemon: daemon(),
                },
                Class::TimedOut,
            ),
            (
                Error::NoDefaultCollection { daemon: daemon() },
                Class::Failed,
            ),
            (Error::Denied("no".into()), Class::Denied),
            (Error::Protocol("p".into()), Class::Failed),
        ];
        for err in absent {
            assert!(StoreError::from(err.clone()).means_absent(), "{err:?}");
        }
        for (err, class) in failing {
            let made = StoreError::from(err.clone());
            assert!(!made.means_absent(), "{err:?}");
            assert_eq!(made.class(), class, "{err:?}");
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
        let locked = |daemon| Error::Locked { daemon }.to_string();
        assert!(locked(Daemon::GnomeKeyring).contains("gnome-keyring-daemon --unlock"));
        assert!(locked(Daemon::KeePassXc).contains("unlock the database in KeePassXC"));
        assert!(!locked(Daemon::KeePassXc).contains("gnome-keyring"));
        assert!(locked(Daemon::KWallet).contains("KWalletManager"));
        assert!(locked(Daemon::Other("secretd".into())).contains("your keyring daemon (secretd)"));
        let prompt = Error::PromptTimedOut {
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
        let unlock = Error::UnlockTimedOut {
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
    fn for_daemon_fills_in_only_the_services_own_errors_that_give_advice() {
        let named = for_daemon(
            Error::TimedOut {
                after: Duration::from_secs(1),
                daemon: Daemon::Unknown,
            }
            .into(),
            Daemon::KeePassXc,
        );
        assert!(
            named.to_string().contains("KeePassXC may be hung"),
            "{named}"
        );
        assert_eq!(named.class(), Class::TimedOut);
        let no_service = StoreError::from(Error::NoService);
        assert_eq!(
            for_daemon(no_service.clone(), Daemon::KeePassXc),
            no_service
        );
        assert!(!names_daemon(&no_service));
        // Another store's error is left as it is.
        let other = StoreError::from(crate::store::Common::Failed("x".into()));
        assert!(!names_daemon(&other));
        assert_eq!(for_daemon(other.clone(), Daemon::KeePassXc), other);
    }
}
