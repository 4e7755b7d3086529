//! The person at this end, as the stores see them: a passphrase from its
//! variable or typed at the terminal, whether anyone is there to answer a
//! keyring's dialog, and lines to show. Stores ask; this answers.
//!
//! It sits above both `store` (whose `Person` it is) and `term` (whose
//! prompts it uses), so that neither has to know the other.

use zeroize::Zeroizing;

use crate::store::Common;
use crate::store::{Ask, Person, StoreError};
use crate::term::prompt;

/// The person running with-secrets, through the environment and the
/// controlling terminal.
pub(crate) struct Terminal;

/// The one there is.
pub(crate) static TERMINAL: Terminal = Terminal;

impl Person for Terminal {
    /// The variable, where set; else, on a terminal, a prompt (twice for a
    /// new one, which must not be empty); else an error that names the
    /// variable, since nobody can be asked.
    fn secret(&self, ask: &Ask<'_>) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        if let Some(value) = std::env::var_os(ask.variable).filter(|v| !v.is_empty()) {
            return Ok(Zeroizing::new(value.into_encoded_bytes()));
        }
        if !prompt::has_terminal() && ask.new {
            return Err(StoreError::from(Common::NeedNewPassword {
                path: ask.path.to_owned(),
                variable: ask.variable,
            }));
        }
        if !prompt::has_terminal() {
            return Err(StoreError::from(Common::NeedPassword {
                path: ask.path.to_owned(),
                variable: ask.variable,
            }));
        }
        let typed = |text: &str| {
            prompt::password(text)
                .map(|mut typed| Zeroizing::new(std::mem::take(&mut *typed).into_bytes()))
                .map_err(|err| {
                    StoreError::from(Common::Unreadable {
                        path: ask.path.to_owned(),
                        reason: format!("cannot read what was typed: {err}"),
                    })
                })
        };
        let first = typed(&ask.prompt)?;
        if !ask.new {
            return Ok(first);
        }
        if first.is_empty() {
            return Err(StoreError::from(Common::Failed(
                "refusing an empty passphrase; nothing was stored".into(),
            )));
        }
        let second = typed("The same passphrase again: ")?;
        if first != second {
            return Err(StoreError::from(Common::Failed(
                "the two passphrases differ; nothing was stored\n  run this again".into(),
            )));
        }
        Ok(first)
    }

    fn is_present(&self) -> bool {
        prompt::has_terminal()
    }

    fn tell(&self, message: &str) {
        crate::note!("{message}");
    }

    fn warn(&self, message: &str) {
        crate::warning!("{message}");
    }
}

/// Nobody to ask: a passphrase can only come from its variable, else the
/// error names the variable; lines go to stderr. The bridge's end (its stdin
/// is the pipe) and an agent that has started (a prompt from the background
/// would stop it) have only this.
pub(crate) struct Nobody;

/// The one there is.
pub(crate) static NOBODY: Nobody = Nobody;

impl Person for Nobody {
    fn secret(&self, ask: &Ask<'_>) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        match std::env::var_os(ask.variable).filter(|value| !value.is_empty()) {
            Some(value) => Ok(Zeroizing::new(value.into_encoded_bytes())),
            None => Err(StoreError::from(Common::NeedPassword {
                path: ask.path.to_owned(),
                variable: ask.variable,
            })),
        }
    }

    fn is_present(&self) -> bool {
        false
    }

    fn tell(&self, message: &str) {
        crate::note!("{message}");
    }

    fn warn(&self, message: &str) {
        crate::warning!("{message}");
    }
}
