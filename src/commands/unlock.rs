//! `with-secrets unlock` and `with-secrets lock`: the file store opened once
//! for a login session, and closed again (see `store::file::unlock`).

use std::process::ExitCode;
use std::time::Duration;

use crate::config::Config;
use crate::error::Error;
#[cfg(target_os = "linux")]
use crate::store::file::unlock::Session;
use crate::store::file::{FileStore, UNLOCK_FOR};
use crate::store::{StoreError, StoreKind};
use crate::term::when::{describe_duration, describe_moment};

pub(crate) fn unlock(duration: Option<Duration>, config: &Config) -> Result<ExitCode, Error> {
    let duration = duration.unwrap_or(UNLOCK_FOR);
    let mut store = FileStore::open(&config.store_settings(&Default::default())).map_err(failed)?;
    #[cfg(target_os = "linux")]
    {
        let (until, session) = store.unlock(duration).map_err(failed)?;
        let path = FileStore::default_path().unwrap_or_default();
        crate::note!(
            "with-secrets: unlocked {} for {}, until {}{}",
            crate::term::printable::printable_path(&path),
            describe_duration(duration),
            describe_moment(until),
            match session {
                Session::Own => "; your runs in this login session ask no passphrase",
                Session::Shared => {
                    "; this shell has no session keyring of its own (its login did not run \
                     pam_keyinit), so every session of yours without one shares this unlock"
                }
            }
        );
        crate::note!("  `with-secrets lock` locks it again now");
        Ok(ExitCode::SUCCESS)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (&mut store, duration, describe_duration, describe_moment);
        Err(failed(not_here()))
    }
}

pub(crate) fn lock(_config: &Config) -> Result<ExitCode, Error> {
    #[cfg(target_os = "linux")]
    {
        let forgotten = crate::store::file::unlock::forget().map_err(failed)?;
        crate::note!(
            "with-secrets: {}",
            if forgotten == 0 {
                "the file store was not unlocked in this login session"
            } else {
                "locked the file store: runs ask for its passphrase again"
            }
        );
        Ok(ExitCode::SUCCESS)
    }
    #[cfg(not(target_os = "linux"))]
    Err(failed(not_here()))
}

#[cfg(not(target_os = "linux"))]
fn not_here() -> StoreError {
    StoreError::from(crate::store::Common::Unavailable {
        store: "file",
        reason: "unlock keeps the file's key in the Linux kernel's keyrings, which this \
                 system does not have"
            .into(),
    })
}

fn failed(cause: StoreError) -> Error {
    Error::Store {
        store: StoreKind::File.name(),
        cause,
    }
}
