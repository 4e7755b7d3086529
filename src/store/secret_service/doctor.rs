//! The Secret Service's section of `doctor`: the bus, the service and the
//! program behind it, each session algorithm, and the default collection.

use super::{PLAIN_SESSION_VARIABLE, diagnose};
use crate::store::{Report, Settings};
use crate::term::printable::first_line;

/// What is known of the Secret Service; `usable` says why it is not, which
/// is also why `auto` would pass it over.
pub(crate) fn report(settings: &Settings) -> Report {
    let diagnosis = diagnose(settings.timeout, settings.person);
    let mut lines = Vec::new();
    let bus = match &diagnosis.bus {
        Ok(address) => address.clone(),
        Err(err) => first_line(err),
    };
    lines.push(("session bus:", bus));
    if let Err(err) = diagnosis.bus {
        return Report {
            lines,
            usable: Err(err),
        };
    }
    let service = match &diagnosis.service {
        Ok((pid, name)) => format!("{name} (pid {pid}; {})", diagnosis.daemon.name()),
        Err(err) => first_line(err),
    };
    lines.push(("Secret Service:", service));
    // A daemon that answers but cannot open a session fails every run:
    // show each algorithm's outcome, and which one runs use.
    let plain = std::env::var_os(PLAIN_SESSION_VARIABLE).is_some_and(|value| value == "1");
    for (index, (algorithm, outcome)) in diagnosis.sessions.iter().enumerate() {
        let used = if (index == 1) == plain {
            "runs use it"
        } else if plain {
            "runs use plain (WITH_SECRETS_PLAIN_SESSION=1)"
        } else {
            "only with WITH_SECRETS_PLAIN_SESSION=1"
        };
        let state = match outcome {
            Ok(()) => format!("opens ({used})"),
            Err(err) => format!("FAILS ({used}): {}", first_line(err)),
        };
        let label = if index == 0 {
            "encryption:"
        } else {
            "plain session:"
        };
        lines.push((label, format!("{algorithm} {state}")));
    }
    let locked = match &diagnosis.locked {
        Ok(false) => "default collection unlocked".to_owned(),
        Ok(true) => format!(
            "default collection LOCKED: runs ask {} to unlock it, and fail if it stays locked",
            diagnosis.daemon.name()
        ),
        Err(err) => first_line(err),
    };
    if diagnosis.service.is_ok() {
        lines.push(("keyring:", locked));
    }
    let usable = match diagnosis.service {
        Err(err) if err.means_absent() => Err(err),
        _ => Ok(()),
    };
    Report { lines, usable }
}
