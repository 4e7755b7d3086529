//! The Windows helper's line in `doctor`.

use super::{HELPER_VARIABLE, probe};
use crate::store::{Report, Settings};
use crate::term::printable::first_line;

/// Whether the Windows helper answers, when it could be used: on WSL, when
/// `chosen` (the runs use `windows`), or when a helper is named. `usable`
/// says why it is not.
pub(crate) fn report(chosen: bool, settings: &Settings) -> Option<Report> {
    let named = std::env::var_os(HELPER_VARIABLE).is_some_and(|v| !v.is_empty());
    if !chosen && crate::machine::wsl().is_none() && !named {
        return None;
    }
    let outcome = probe(settings.timeout);
    let line = match &outcome {
        Ok(about) => format!("{about} answers"),
        Err(err) if err.means_absent() => format!("not here: {}", first_line(err)),
        Err(err) => format!("FAILS: {}", first_line(err)),
    };
    Some(Report {
        lines: vec![("windows helper:", line)],
        usable: outcome.map(drop),
    })
}
