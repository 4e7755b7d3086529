//! How much with-secrets says on stderr besides errors: `-q` silences
//! warnings, `-v` adds an account of what it did. Errors are always shown.
//!
//! This is one process-wide setting, like a logger's level, because warnings
//! come from deep inside stores (keyrings.alt's plain-text file) that have no
//! business taking a flag through every call on the way.
//!
//! Every line goes out with its control characters escaped (see
//! [`crate::term::printable::printable_lines`]): messages quote the manifest, which
//! may be hostile.

use std::sync::atomic::{AtomicU8, Ordering};

/// What `-q` and `-v` ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub(crate) enum Verbosity {
    /// `-q`: errors only.
    Quiet = 0,
    /// The default: errors and warnings; silence on success.
    Normal = 1,
    /// `-v`: also which manifest, which store and why, and how long it took.
    Verbose = 2,
}

static LEVEL: AtomicU8 = AtomicU8::new(Verbosity::Normal as u8);

/// Sets the level for the rest of the run.
pub(crate) fn set(level: Verbosity) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

/// Whether warnings are shown (not `-q`).
pub(crate) fn warnings() -> bool {
    LEVEL.load(Ordering::Relaxed) >= Verbosity::Normal as u8
}

/// Whether `-v` was given.
pub(crate) fn verbose() -> bool {
    LEVEL.load(Ordering::Relaxed) >= Verbosity::Verbose as u8
}

/// Writes `prefix` and `message` as one line on stderr, its control
/// characters escaped (the manifest may be hostile). Not `eprintln!`, which
/// panics when stderr is a closed pipe: no message is worth dying for.
pub(crate) fn line(prefix: &str, message: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let text = super::printable::printable_lines(&message.to_string()).into_owned();
    let _ = writeln!(std::io::stderr(), "{prefix}{text}");
}

/// A line on stderr for a warning: silent under `-q`.
#[macro_export]
macro_rules! warning {
    ($($arg:tt)*) => {
        if $crate::term::verbosity::warnings() {
            $crate::term::verbosity::line("", format_args!($($arg)*));
        }
    };
}

/// A line on stderr that is not a warning (what a command did, why `check`
/// failed), shown even under `-q`.
#[macro_export]
macro_rules! note {
    ($($arg:tt)*) => {
        $crate::term::verbosity::line("", format_args!($($arg)*))
    };
}

/// A line on stderr for `-v` only, with the `with-secrets: ` prefix.
#[macro_export]
macro_rules! explain {
    ($($arg:tt)*) => {
        if $crate::term::verbosity::verbose() {
            $crate::term::verbosity::line("with-secrets: ", format_args!($($arg)*));
        }
    };
}
