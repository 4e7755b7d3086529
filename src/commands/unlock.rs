//! `with-secrets unlock` and `with-secrets lock`: this login session trusted
//! for a while, and no longer. An unlock opens the file store (see
//! `store::file::unlock`) and turns the session cache on for slow stores
//! (see `store::cache`); a lock ends both.

use std::process::ExitCode;
use std::time::Duration;

use crate::config::Config;
use crate::error::Error;
#[cfg(target_os = "linux")]
use crate::store::file::FileStore;
use crate::store::file::UNLOCK_FOR;
#[cfg(target_os = "linux")]
use crate::store::file::unlock::Session;
use crate::store::{StoreError, StoreKind};
use crate::term::when::{describe_duration, describe_moment};

pub(crate) fn unlock(duration: Option<Duration>, config: &Config) -> Result<ExitCode, Error> {
    let duration = duration.unwrap_or(UNLOCK_FOR);
    #[cfg(target_os = "linux")]
    {
        use crate::store::cache;
        let settings = config.store_settings(&Default::default());
        // The file store is unlocked where there is one, or where runs use
        // it (and then made); a person who only reads a server is never
        // asked for a passphrase they have no use for.
        let file_path = FileStore::default_path().unwrap_or_default();
        let opens_file = file_path.exists() || runs_use_file(config, &settings);
        let file = if opens_file {
            let mut store = FileStore::open(&settings).map_err(failed)?;
            Some(store.unlock(duration).map_err(failed)?)
        } else {
            // Before anything else: can anything be kept here?
            crate::store::session_keyring::session()
                .map_err(|failure| cache_failed(failure, false))?;
            None
        };
        let (until, session) =
            cache::start(duration).map_err(|failure| cache_failed(failure, file.is_some()))?;
        let shared = "; this shell has no session keyring of its own (its login did not run \
                      pam_keyinit), so every session of yours without one shares this unlock";
        if let Some((until, session)) = file {
            crate::note!(
                "with-secrets: unlocked {} for {}, until {}{}",
                crate::term::printable::printable_path(&file_path),
                describe_duration(duration),
                describe_moment(until),
                match session {
                    Session::Own => "; your runs in this login session ask no passphrase",
                    Session::Shared => shared,
                }
            );
        }
        crate::note!(
            "with-secrets: session cache on for {}, until {}: values runs read from vault, \
             windows on WSL or an agent are kept in this login session, and later runs take \
             them from there without asking the store{}",
            describe_duration(duration),
            describe_moment(until),
            match session {
                // Said once, on the file store's line where there is one.
                Session::Shared if file.is_none() => shared,
                _ => "",
            }
        );
        crate::note!(
            "  a value changed in the store since is seen after `with-secrets lock`, or with \
             --no-cache; `with-secrets lock` ends {} now",
            if file.is_some() { "both" } else { "it" }
        );
        Ok(ExitCode::SUCCESS)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (config, duration, describe_duration, describe_moment);
        Err(failed(not_here()))
    }
}

/// Whether runs here use the file store: `--store file`, or
/// `WITH_SECRETS_STORE`, or the manifest's (or profile's) `store`, or `auto`
/// where it would pick the file store.
#[cfg(target_os = "linux")]
fn runs_use_file(config: &Config, settings: &crate::store::Settings) -> bool {
    let kind = match config.project() {
        Ok(project) => project.store,
        Err(_) => config.store_without_manifest().0,
    };
    match kind {
        StoreKind::File => true,
        StoreKind::Auto => auto_picks_file(settings),
        _ => false,
    }
}

/// Whether `auto` would use the file store here, as it picks (see
/// `store::auto`): no agent named, no Windows helper that answers on WSL,
/// and no platform keyring at all (one that is there but fails is not
/// passed over).
#[cfg(target_os = "linux")]
fn auto_picks_file(settings: &crate::store::Settings) -> bool {
    use crate::store::{native_kind, report};
    if settings.agent.is_some() {
        return false;
    }
    let usable = |kind| report(kind, StoreKind::Auto, settings).map(|report| report.usable);
    if crate::machine::wsl().is_some() && matches!(usable(StoreKind::Windows), Some(Ok(()))) {
        return false;
    }
    matches!(usable(native_kind()), Some(Err(err)) if err.means_absent())
}

pub(crate) fn lock(_config: &Config) -> Result<ExitCode, Error> {
    #[cfg(target_os = "linux")]
    {
        use crate::store::{cache, file::unlock, session_keyring};
        let [file, cache, _] =
            session_keyring::forget([unlock::KIND, cache::KINDS[0], cache::KINDS[1]])
                .map_err(|failure| failed(unlock::unusable(failure)))?;
        crate::note!(
            "with-secrets: {}",
            match (file > 0, cache > 0) {
                (true, true) => {
                    "locked the file store and ended the session cache: runs ask for its \
                     passphrase, and read every value from its store, again"
                }
                (true, false) => "locked the file store: runs ask for its passphrase again",
                (false, true) =>
                    "ended the session cache: runs read every value from its store again",
                (false, false) => {
                    "the file store was not unlocked in this login session, and no session \
                     cache was on"
                }
            }
        );
        Ok(ExitCode::SUCCESS)
    }
    #[cfg(not(target_os = "linux"))]
    Err(failed(not_here()))
}

/// The kernel keyring cannot keep the session cache here; `file_unlocked`
/// where the file store was unlocked all the same.
#[cfg(target_os = "linux")]
fn cache_failed(failure: crate::store::keyutils::Failure, file_unlocked: bool) -> Error {
    let reason = if file_unlocked {
        format!(
            "the file store is unlocked, but the session cache could not be turned on: {}\n  \
             runs read every value from its store; `with-secrets lock` locks the file store \
             again",
            failure.why()
        )
    } else {
        format!(
            "the kernel keyring cannot be used here, so nothing can be unlocked: {}\n  \
             runs read every value from its store as before",
            failure.why()
        )
    };
    Error::Store {
        store: "cache",
        cause: StoreError::from(crate::store::Common::Unavailable {
            store: "cache",
            reason,
        }),
    }
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
