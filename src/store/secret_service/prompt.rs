//! Running the service's prompts and waiting for their `Completed` signal.

use std::time::{Duration, Instant};

use dbus::Message;
use dbus::arg::{RefArg, Variant};

use super::ServiceError;
use super::connection::{method, send};
use super::reply::check;
use super::{BUS, Daemon, NO_PROMPT, ObjectPath, PROMPT_IFACE, SERVICE, SecretService, StoreError};

/// How long a person at a terminal gets to answer a prompt: longer than a
/// call may take, since a person, not a daemon, may be the one answering.
const PROMPT_WAIT: Duration = Duration::from_secs(120);
/// How long a prompt may take before the person at the terminal is told
/// that with-secrets waits for it.
const NOTICE_AFTER: Duration = Duration::from_millis(500);

impl SecretService {
    /// Runs `prompt`, which a call returned, and waits for its `Completed`
    /// signal; a dismissed prompt is the error `dismissed`. Returns the
    /// object paths in the signal's result (what an `Unlock` unlocked).
    ///
    /// A prompt does not always mean a person must answer: KeePassXC returns
    /// one for every CreateItem and Delete, and completes it in milliseconds
    /// with no dialog. So every prompt is run, with or without a terminal.
    /// Without one, it gets the call timeout, like any call: a prompt that
    /// needs a person then fails in bounded time, saying a dialog may be
    /// waiting, and never hangs CI. With a terminal, a person is there to
    /// answer a dialog and may be typing a password, so it gets
    /// `PROMPT_WAIT`.
    ///
    /// Only the service's own `Completed` counts: the match rule names its
    /// unique name as sender, and so does the check of each signal, as a
    /// signal sent to us directly bypasses match rules. Otherwise any
    /// process on the bus could answer "done" (or "dismissed") for it.
    pub(super) fn complete(
        &mut self,
        prompt: &ObjectPath,
        dismissed: StoreError,
    ) -> Result<Vec<ObjectPath>, StoreError> {
        if &**prompt == NO_PROMPT {
            return Ok(Vec::new());
        }
        let owner = self.owner.clone().ok_or_else(|| {
            StoreError::from(ServiceError::Protocol(
                "a prompt came from an unknown sender".into(),
            ))
        })?;
        // Subscribe before asking, or a quick answer could be missed.
        let rule = format!(
            "type='signal',sender='{owner}',interface='{PROMPT_IFACE}',member='Completed',path='{}'",
            &**prompt
        );
        let subscribe = method(BUS, "/org/freedesktop/DBus", BUS, "AddMatch").append1(rule);
        let ask = method(SERVICE, prompt, PROMPT_IFACE, "Prompt").append1("");
        let serials = [send(&self.channel, subscribe)?, send(&self.channel, ask)?];
        let person = self.person.is_present();
        let wait = if person {
            PROMPT_WAIT.max(self.timeout)
        } else {
            self.timeout
        };
        let deadline = Instant::now() + wait;
        // A prompt that needs nobody completes at once; one that is still
        // open after a moment is a dialog, and the person at the terminal
        // is told what the wait is for, as sudo or ssh would.
        let mut notice_at = person.then(|| Instant::now() + NOTICE_AFTER);
        loop {
            // An error from AddMatch or Prompt ends the wait; their success
            // says nothing about the outcome.
            if let Some(mut reply) = self.early.remove(&serials[0]) {
                check(&mut reply)?;
            }
            if let Some(mut reply) = self.early.remove(&serials[1]) {
                prompt_ran(&mut reply, &owner, dismissed.clone())?;
            }
            if let Some(index) = self
                .completed
                .iter()
                .position(|signal| completes(signal, prompt, &owner))
            {
                let signal = self.completed.remove(index);
                return outcome(&signal, dismissed);
            }
            let now = Instant::now();
            let left = deadline.saturating_duration_since(now);
            if left.is_zero() {
                return Err(StoreError::from(ServiceError::PromptTimedOut {
                    daemon: Daemon::Unknown,
                    after: wait,
                }));
            }
            if notice_at.is_some_and(|at| now >= at) {
                notice_at = None;
                let daemon = self.daemon();
                self.person.tell(&format!(
                    "with-secrets: waiting up to {} s for {}'s prompt; answer it there, \
                     or press Ctrl+C",
                    wait.as_secs(),
                    daemon.name()
                ));
                continue;
            }
            let until = notice_at.map_or(left, |at| left.min(at.saturating_duration_since(now)));
            self.pump(Some(until))?;
        }
    }
}

/// Whether `signal` is the `Completed` of `prompt`, sent by the service
/// (`owner`) itself.
fn completes(signal: &Message, prompt: &ObjectPath, owner: &str) -> bool {
    signal.path().is_some_and(|path| *path == **prompt)
        && signal.sender().is_some_and(|sender| *sender == *owner)
}

/// What a prompt's `Completed` signal says: the error `dismissed`, or the
/// object paths in its result.
fn outcome(signal: &Message, dismissed: StoreError) -> Result<Vec<ObjectPath>, StoreError> {
    let (was_dismissed, result) = signal.get2::<bool, Variant<Box<dyn RefArg>>>();
    let was_dismissed = was_dismissed.ok_or_else(|| {
        StoreError::from(ServiceError::Protocol(
            "a Completed signal without its dismissed flag".into(),
        ))
    })?;
    if was_dismissed {
        Err(dismissed)
    } else {
        Ok(result.map_or_else(Vec::new, |result| object_paths(&*result.0)))
    }
}

/// The error for a prompt, confirming `change`, that was dismissed.
pub(super) fn refused(change: &str) -> StoreError {
    StoreError::from(ServiceError::Denied(format!(
        "the keyring's prompt to confirm {change} was dismissed"
    )))
}

/// Checks the reply to a `Prompt` call. Its success says nothing about the
/// outcome, which comes with `Completed`; an error is one of two things.
/// Sent by the service itself, it failed to run the prompt: oo7-daemon
/// with no prompter to show it answers `org.freedesktop.zbus.Error`
/// ("CLI prompter failed"), and other daemons use other names, so the
/// sender decides, not the name. For the person, that prompt could not be
/// shown, which is what `dismissed` says. Sent by the bus, the service went
/// away while asked (no owner, no reply): a failure, never "no Secret
/// Service here", which would let the environment stand in.
fn prompt_ran(reply: &mut Message, owner: &str, dismissed: StoreError) -> Result<(), StoreError> {
    let from_service = reply.sender().is_some_and(|sender| *sender == *owner);
    let Err(err) = reply.as_result().map(drop) else {
        return Ok(());
    };
    let name = err.name().unwrap_or("");
    match name {
        "org.freedesktop.DBus.Error.AccessDenied" => check(reply),
        _ if from_service => Err(dismissed),
        "org.freedesktop.DBus.Error.ServiceUnknown"
        | "org.freedesktop.DBus.Error.NameHasNoOwner"
        | "org.freedesktop.DBus.Error.NoReply"
        | "org.freedesktop.DBus.Error.Disconnected" => Err(went_away(&format!(
            "{name}: {}",
            err.message().unwrap_or("")
        ))),
        _ => check(reply),
    }
}

/// The error for a Secret Service that answered earlier in this run and
/// is gone now; `detail` says how that showed.
pub(super) fn went_away(detail: &str) -> StoreError {
    StoreError::from(ServiceError::Protocol(format!(
        "the Secret Service went away during the run ({detail})\n  \
         check that your keyring daemon is running (start or restart it), then run this again"
    )))
}

/// The object paths in a prompt's result: an array of them for `Unlock`,
/// anything else (an item path, an empty string) for other prompts.
fn object_paths(result: &dyn RefArg) -> Vec<ObjectPath> {
    if &*result.signature() != "ao" {
        return Vec::new();
    }
    result
        .as_iter()
        .into_iter()
        .flatten()
        .filter_map(|path| {
            path.as_str()
                .and_then(|p| ObjectPath::new(p.to_owned()).ok())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWNER: &str = ":1.42";

    fn path(text: &str) -> ObjectPath {
        ObjectPath::new(text.to_owned()).unwrap()
    }

    /// A prompt's `Completed` signal, from `sender`.
    fn completed(prompt: &str, sender: &str, dismissed: bool, result: Box<dyn RefArg>) -> Message {
        let mut signal = Message::new_signal(prompt, PROMPT_IFACE, "Completed")
            .unwrap()
            .append2(dismissed, Variant(result));
        signal.set_sender(Some(sender.into()));
        signal
    }

    /// The reply to a `Prompt` call: an error `name` from `sender`, or
    /// success with no name.
    fn prompt_reply(sender: &str, name: Option<&str>) -> Message {
        let mut call = method(SERVICE, "/p/1", PROMPT_IFACE, "Prompt").append1("");
        call.set_serial(7);
        let mut reply = match name {
            Some(name) => call.error(&name.into(), c"it failed"),
            None => call.method_return(),
        };
        reply.set_sender(Some(sender.into()));
        reply
    }

    fn dismissed() -> StoreError {
        refused("storing the item")
    }

    #[test]
    fn only_the_services_own_completed_signal_counts() {
        let prompt = path("/org/freedesktop/secrets/prompt/3");
        let ours = completed(&prompt, OWNER, false, Box::new(String::new()));
        assert!(completes(&ours, &prompt, OWNER));
        let forged = completed(&prompt, ":1.99", false, Box::new(String::new()));
        assert!(!completes(&forged, &prompt, OWNER), "another sender");
        let other = completed(
            "/org/freedesktop/secrets/prompt/4",
            OWNER,
            false,
            Box::new(0u8),
        );
        assert!(!completes(&other, &prompt, OWNER), "another prompt");
    }

    #[test]
    fn a_completed_signal_gives_the_unlocked_paths_or_the_dismissal() {
        let unlocked = vec![path("/c/login"), path("/c/work")];
        let signal = completed("/p/1", OWNER, false, Box::new(unlocked.clone()));
        assert_eq!(outcome(&signal, dismissed()), Ok(unlocked));
        let item = completed("/p/1", OWNER, false, Box::new(path("/c/login/1")));
        assert_eq!(outcome(&item, dismissed()), Ok(Vec::new()));
        let empty = completed("/p/1", OWNER, false, Box::new(String::new()));
        assert_eq!(outcome(&empty, dismissed()), Ok(Vec::new()));
        let no = completed("/p/1", OWNER, true, Box::new(String::new()));
        assert_eq!(outcome(&no, dismissed()), Err(dismissed()));
        let bare = Message::new_signal("/p/1", PROMPT_IFACE, "Completed").unwrap();
        let err = outcome(&bare, dismissed()).unwrap_err();
        assert!(matches!(
            err.fault::<ServiceError>(),
            Some(ServiceError::Protocol(_))
        ));
    }

    #[test]
    fn a_prompt_the_service_failed_to_run_is_dismissed_and_one_the_bus_lost_went_away() {
        assert_eq!(
            prompt_ran(&mut prompt_reply(OWNER, None), OWNER, dismissed()),
            Ok(())
        );
        let failed = prompt_reply(OWNER, Some("org.freedesktop.zbus.Error"));
        assert_eq!(
            prompt_ran(&mut { failed }, OWNER, dismissed()),
            Err(dismissed())
        );
        let denied = prompt_reply(OWNER, Some("org.freedesktop.DBus.Error.AccessDenied"));
        assert_eq!(
            prompt_ran(&mut { denied }, OWNER, dismissed()),
            Err(StoreError::from(ServiceError::Denied("it failed".into())))
        );
        for name in [
            "org.freedesktop.DBus.Error.NameHasNoOwner",
            "org.freedesktop.DBus.Error.NoReply",
        ] {
            let lost = prompt_reply("org.freedesktop.DBus", Some(name));
            let err = prompt_ran(&mut { lost }, OWNER, dismissed()).unwrap_err();
            assert!(
                err.to_string().contains("went away during the run"),
                "{name}: {err}"
            );
            assert!(
                !err.means_absent(),
                "{name}: the environment may not stand in"
            );
        }
    }

    #[test]
    fn no_prompt_is_run_for_the_path_slash() {
        // A bus that accepts the connection and never answers: running a
        // prompt would wait for it and time out.
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("bus");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let channel =
            dbus::channel::Channel::open_private(&format!("unix:path={}", socket.display()))
                .unwrap();
        let mut service = SecretService {
            channel,
            timeout: Duration::from_secs(5),
            session: super::super::Session::Pending {
                serial: 0,
                keys: None,
            },
            early: std::collections::HashMap::new(),
            completed: Vec::new(),
            owner: Some(OWNER.to_owned()),
            round_trips: 0,
            person: &crate::store::memory::NOBODY,
        };
        let asked = service.complete(&path(NO_PROMPT), dismissed());
        assert_eq!(asked, Ok(Vec::new()));
        assert!(!service.channel.has_messages_to_send(), "nothing was sent");
        assert_eq!(service.round_trips, 0);
    }
}
