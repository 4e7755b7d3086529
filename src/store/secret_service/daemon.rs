//! Which program owns the service, so an error's advice can name it.

use std::time::Duration;

use super::connection::{method, send};
use super::error::{for_daemon, names_daemon};
use super::prompt::went_away;
use super::reply::read;
use super::{BUS, Daemon, SERVICE, SecretService, ServiceError, StoreError};

/// How long finding the daemon's name for a message may take: it runs after
/// something already failed, perhaps after the whole timeout, so it gets a
/// budget of its own, and a short one.
const NAME_WAIT: Duration = Duration::from_millis(500);

impl SecretService {
    /// `result`, with the daemon named in an error whose advice depends on it.
    ///
    /// "No Secret Service" means no store here only until the service has
    /// answered: once it has, it was here, and a name with no owner now
    /// means it went away during the run (crashed, or was stopped), which
    /// is a failure, not a reason for anything to stand in for it.
    pub(super) fn named<T>(&mut self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        result.map_err(|err| {
            if err == StoreError::from(ServiceError::NoService) && self.owner.is_some() {
                went_away("its name has no owner now")
            } else if names_daemon(&err) {
                let daemon = self.daemon();
                for_daemon(err, daemon)
            } else {
                err
            }
        })
    }

    /// Which program owns the service, from its PID's `comm`. Asked only
    /// when a message needs it, so a run that works never pays for it; and
    /// within `NAME_WAIT`, so a hung bus delays the error only that much.
    pub(super) fn daemon(&mut self) -> Daemon {
        let ask = method(
            BUS,
            "/org/freedesktop/DBus",
            BUS,
            "GetConnectionUnixProcessID",
        )
        .append1(SERVICE);
        let pid = send(&self.channel, ask)
            .and_then(|serial| self.wait_for(&[serial], NAME_WAIT.min(self.timeout)))
            .and_then(|mut replies| read::<(u32,)>(&mut replies[0]));
        match pid {
            Ok((pid,)) => program(pid).map_or(Daemon::Unknown, |name| Daemon::from_program(&name)),
            Err(_) => Daemon::Unknown,
        }
    }
}

/// The process name of `pid`, as the kernel keeps it.
pub(super) fn program(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|name| name.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_is_named_as_the_kernel_keeps_it() {
        // The kernel keeps the first 15 bytes of the executable's name.
        let exe = std::env::current_exe().unwrap();
        let name = exe.file_name().unwrap().to_str().unwrap();
        let kept = &name[..name.len().min(15)];
        assert_eq!(program(std::process::id()).as_deref(), Some(kept));
        assert_eq!(program(u32::MAX), None, "no such process");
    }
}
