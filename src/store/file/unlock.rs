//! An unlocked file store: its file key, kept for one login session and one
//! user in the Linux kernel's keyrings, with a timeout (`with-secrets unlock`).
//!
//! The file key K (16 bytes) is kept as `session_keyring` keeps a key, in two
//! halves, as kind `file` with the id SALT (the hex of the file's scrypt
//! salt): `with-secrets:file:SALT` in the session keyring, and its pad
//! `with-secrets:file-pad:SALT:SESSION` in the user keyring. That module says
//! why there, and who can and cannot read them: only the same session and
//! the same uid get K back (and root).
//!
//! Never the passphrase: the file key opens this file only, and says nothing
//! of the passphrase. A new file key always comes with a new salt
//! (`age::encrypt`), so halves kept for an older one are never found, and a
//! change of passphrase leaves them useless. A run checks K against the
//! header's MAC before it trusts it, so halves of two different unlocks
//! (one of them replaced since) are never taken for a key.
//!
//! Every process of your uid in this session can use K, the commands
//! with-secrets runs included (README, "Security notes"): they stay in the
//! session keyring, so that a `with-secrets` a command starts (a Makefile
//! target's `with-secrets check`, a script's `with-secrets -- ...`) asks no
//! passphrase either. Moving them into a keyring of their own
//! (`KEYCTL_JOIN_SESSION_KEYRING`) would make every such nested run ask
//! again, and would not keep out a process of your uid, which can get into
//! your session by other ways: it may ptrace your shell where Yama does not
//! forbid it, or edit your shell's startup files.
//!
//! `lock` invalidates both halves of this session (and the session cache,
//! see `store::cache`); where one has expired or is gone, the other is
//! useless, and runs ask for the passphrase.

use std::time::{Duration, SystemTime};

use super::age::{FILE_KEY_LEN, FileKey};
use crate::store::Common;
use crate::store::StoreError;
use crate::store::keyutils::Failure;
pub(crate) use crate::store::session_keyring::Session;
use crate::store::session_keyring::{self as keyring};

/// The kind of what is kept, in the keys' descriptions.
pub(crate) const KIND: &str = "file";

/// A file key kept by `unlock`.
pub(crate) struct Kept {
    pub(crate) key: FileKey,
    pub(crate) until: SystemTime,
}

/// Why nothing can be kept here: the kernel keyring cannot be used.
pub(crate) fn unusable(failure: Failure) -> StoreError {
    StoreError::from(Common::Unavailable {
        store: "file",
        reason: format!(
            "the kernel keyring cannot be used here, so the file store cannot be unlocked: \
             {}\n  runs ask for the passphrase (or read WITH_SECRETS_PASSPHRASE) as before",
            failure.why()
        ),
    })
}

fn id(salt: &[u8]) -> String {
    crate::store::escape::hex(salt)
}

/// Which keyring `@s` is here; fails where the kernel keyring cannot be used.
pub(crate) fn session() -> Result<Session, StoreError> {
    keyring::session().map_err(unusable)
}

/// The file key kept for the file whose scrypt salt is `salt`, if this
/// session keeps its first half and this uid its pad, neither expired.
pub(crate) fn find(salt: &[u8]) -> Result<Option<Kept>, StoreError> {
    let kept = keyring::find::<FILE_KEY_LEN>(KIND, &id(salt)).map_err(unusable)?;
    Ok(kept.map(|kept| Kept {
        key: kept.key,
        until: kept.until,
    }))
}

/// Keeps `key`, the file key of the file whose salt is `salt`, for this
/// session and uid for `duration`; returns when it ends and where it went.
pub(crate) fn keep(
    salt: &[u8],
    key: &FileKey,
    duration: Duration,
) -> Result<(SystemTime, Session), StoreError> {
    keyring::keep(KIND, &id(salt), key.as_slice(), duration).map_err(unusable)
}
