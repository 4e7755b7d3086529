//! The `file` store: one passphrase-encrypted age file, for machines with no
//! keyring daemon (WSL, SSH, containers, CI).
//!
//! The file is `secrets.age` in `$XDG_DATA_HOME/with-secrets/` (else
//! `~/.local/share/with-secrets/`; on macOS `~/Library/Application
//! Support/with-secrets/`, on Windows `%LOCALAPPDATA%\with-secrets\`). It is
//! an age file with a passphrase (scrypt) recipient, written by our own small
//! implementation of the format (see `file/age.rs`), so `age -d` or `rage -d`
//! can always open it. Inside is a short JSON document a person can read
//! (see `file/payload.rs`):
//!
//! ```json
//! {
//!   "with-secrets": 1,
//!   "items": [
//!     { "service": "acme", "username": "api-token", "label": "...", "value": "..." }
//!   ]
//! }
//! ```
//!
//! A value that is not UTF-8 is kept as `"value_base64"` instead of `"value"`.
//!
//! The passphrase comes from `WITH_SECRETS_PASSPHRASE`, else from a prompt on
//! the terminal (twice when the file is made), and is asked at most once per
//! run. A file that does not exist yet is an empty store, and reading it needs
//! no passphrase, so that `-- cmd` in CI still falls back to the environment.
//!
//! Writes never lose entries, even across a crash or between two `set`s at
//! once: each one takes an exclusive lock on `secrets.age.lock`, decrypts the
//! current file, changes it, writes the whole new file to a temporary file
//! beside it, syncs that, renames it over `secrets.age`, and syncs the folder.
//! Readers take no lock: the rename swaps the old file for the new one in a
//! single step, so they see one or the other.

mod age;
pub(crate) mod doctor;
mod payload;
#[cfg(target_os = "linux")]
pub(crate) mod unlock;
mod write;

use std::fs::{self, File};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use payload::{Document, Item};
pub(crate) use write::{create_private_dir, private_options};

use super::{Ask, Common, Found, Key, Person, Settings, Store, StoreError};
use crate::secret::Secret;

/// The folder's name, under the platform's data folder.
const DIR_NAME: &str = "with-secrets";
pub(crate) const FILE_NAME: &str = "secrets.age";
const LOCK_NAME: &str = "secrets.age.lock";
/// Where the passphrase may come from, besides a prompt.
pub(crate) const PASSPHRASE_VARIABLE: &str = "WITH_SECRETS_PASSPHRASE";

/// The scrypt work factor of the files we write: N = 2^16, 64 MiB.
///
/// Every `with-secrets -- cmd` pays for one scrypt run and every `set` for
/// two (one to open the file, one to seal the new one with a fresh salt), so
/// this is a trade between how slow each run feels and how slow a guessing
/// attack on a stolen file is. `age -p` writes 2^18 (about 0.6 s on our
/// 2-core test machine); 2^16 takes about 0.14 s there and 2^15 0.07 s.
/// 2^16 keeps a run well under a quarter second while costing an attacker
/// 64 MiB and a seventh of a second per guess, a quarter of age's own cost.
/// A strong passphrase matters far more than the last two doublings. Reading
/// accepts any factor up to `age::MAX_LOG_N`, so files `age -p` made open too.
const LOG_N: u8 = 16;

/// How long a write waits for another writer's lock unless the run's
/// `--timeout` says otherwise. Writers hold it only while they decrypt,
/// change and rewrite the file (prompts happen before), about 0.3 s each.
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// How long `with-secrets unlock` keeps the file store open, unless `--for`
/// says otherwise: a working day, so that one unlock in the morning covers
/// it, and a machine left on overnight is locked again by the next morning.
pub(crate) const UNLOCK_FOR: Duration = Duration::from_secs(10 * 3_600);

pub(crate) struct FileStore {
    dir: PathBuf,
    path: PathBuf,
    /// Once known, the passphrase, so a run asks at most once.
    passphrase: Option<Zeroizing<Vec<u8>>>,
    /// How long a write waits for another writer's lock.
    lock_wait: Duration,
    /// Who is asked for the passphrase.
    person: &'static dyn Person,
    /// Whether to use a file key this login session keeps (`unlock`), and
    /// to suggest unlocking after a typed passphrase. Off in unit tests,
    /// which must not touch the tester's keyrings.
    session_keyring: bool,
    /// Whether the passphrase was typed at the prompt, not read from
    /// `WITH_SECRETS_PASSPHRASE`.
    typed: bool,
    /// The file key of the file as last opened, to write it back with when
    /// no passphrase was asked (see `update`).
    file_key: Option<age::FileKey>,
}

impl FileStore {
    /// The store at its usual place. Reads nothing and asks nothing: that
    /// waits until the store is used.
    pub(crate) fn open(settings: &Settings) -> Result<Self, StoreError> {
        let dir = Self::default_dir().ok_or_else(|| {
            StoreError::from(Common::Unavailable {
                store: "file",
                reason: "neither XDG_DATA_HOME nor HOME is set, so its folder is unknown; \
                     set XDG_DATA_HOME"
                    .into(),
            })
        })?;
        Ok(Self {
            lock_wait: settings.timeout,
            session_keyring: true,
            ..Self::in_dir(dir, settings.person)
        })
    }

    fn in_dir(dir: PathBuf, person: &'static dyn Person) -> Self {
        Self {
            path: dir.join(FILE_NAME),
            dir,
            passphrase: None,
            lock_wait: LOCK_WAIT,
            person,
            session_keyring: false,
            typed: false,
            file_key: None,
        }
    }

    /// The store's folder: `$XDG_DATA_HOME/with-secrets` wherever
    /// XDG_DATA_HOME is set (to an absolute path, as the XDG spec asks), else
    /// the platform's place for a user's application data.
    pub(crate) fn default_dir() -> Option<PathBuf> {
        crate::paths::data_home().map(|data| data.join(DIR_NAME))
    }

    /// Where the store file is, or would be made.
    pub(crate) fn default_path() -> Option<PathBuf> {
        Self::default_dir().map(|dir| dir.join(FILE_NAME))
    }

    fn lock_path(&self) -> PathBuf {
        self.dir.join(LOCK_NAME)
    }

    /// The encrypted file's bytes, or `None` when there is no file yet.
    fn read(&self) -> Result<Option<Vec<u8>>, StoreError> {
        match fs::read(&self.path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(err) if err.kind() == ErrorKind::NotFound => Ok(None),
            Err(err) => Err(self.unreadable(err.to_string())),
        }
    }

    /// Decrypts and parses `file`: with the file key this session keeps
    /// (`unlock`), else with the passphrase, asked for if need be.
    fn open_file(&mut self, file: &[u8]) -> Result<Document, StoreError> {
        let encrypted =
            age::Encrypted::parse(file).map_err(|err| self.unreadable(err.to_string()))?;
        let file_key = match self.kept_key(&encrypted, true) {
            Some(file_key) => file_key,
            None => self.key_from_passphrase(&encrypted)?,
        };
        let plaintext = encrypted
            .decrypt_with(&file_key)
            .map_err(|err| self.unreadable(err.to_string()))?;
        self.file_key = Some(file_key);
        Document::parse(&plaintext).map_err(|reason| self.unreadable(reason))
    }

    /// The file key, unwrapped with the passphrase (one scrypt).
    fn key_from_passphrase(
        &mut self,
        encrypted: &age::Encrypted<'_>,
    ) -> Result<age::FileKey, StoreError> {
        match encrypted.file_key(self.passphrase(false)?) {
            Ok(file_key) => {
                self.suggest_unlock();
                Ok(file_key)
            }
            Err(age::Error::WrongPassphrase) => {
                // A mistyped passphrase is not kept for the next call.
                self.passphrase = None;
                Err(StoreError::from(Common::BadPassword {
                    path: self.path.clone(),
                    variable: PASSPHRASE_VARIABLE,
                }))
            }
            Err(err) => Err(self.unreadable(err.to_string())),
        }
    }

    /// The file key of `encrypted` that this login session keeps, if it is
    /// unlocked. Where the kernel keyring cannot be used, it is not: runs
    /// ask for the passphrase as they would anyway, and `-v` says why when
    /// `tell`.
    #[cfg(target_os = "linux")]
    fn kept_key(&self, encrypted: &age::Encrypted<'_>, tell: bool) -> Option<age::FileKey> {
        if !self.session_keyring {
            return None;
        }
        match unlock::find(&encrypted.salt()) {
            Ok(Some(kept)) if encrypted.opens_with(&kept.key) => {
                if tell {
                    crate::explain!(
                        "file store unlocked until {}, so no passphrase is asked",
                        crate::term::when::describe_moment(kept.until)
                    );
                }
                Some(kept.key)
            }
            Ok(_) => {
                if tell {
                    crate::explain!(
                        "file store locked: you have not unlocked it in this login session"
                    );
                }
                None
            }
            Err(err) => {
                if tell {
                    crate::explain!(
                        "file store locked: {}",
                        crate::term::printable::first_line(&err)
                    );
                }
                None
            }
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn kept_key(&self, _encrypted: &age::Encrypted<'_>, _tell: bool) -> Option<age::FileKey> {
        None
    }

    /// After a passphrase typed at the prompt, once: where an unlock would
    /// work, that it saves typing it again. `-q` silences it.
    fn suggest_unlock(&mut self) {
        if !(self.typed && self.session_keyring) {
            return;
        }
        self.typed = false;
        #[cfg(target_os = "linux")]
        if unlock::session().is_ok() {
            self.person.warn(&format!(
                "with-secrets: tip: `with-secrets unlock` asks for this passphrase once for this \
                 login session (for {} unless --for says otherwise), and runs after it ask none",
                crate::term::when::describe_duration(UNLOCK_FOR)
            ));
        }
    }

    /// Whether this login session keeps the key of the file as it is now.
    fn unlocked_now(&self) -> bool {
        let Ok(Some(file)) = self.read() else {
            return false;
        };
        age::Encrypted::parse(&file)
            .is_ok_and(|encrypted| self.kept_key(&encrypted, false).is_some())
    }

    /// The passphrase: from the environment, else typed (twice when `new`,
    /// since a typo would lock the person out of a fresh file).
    fn passphrase(&mut self, new: bool) -> Result<&[u8], StoreError> {
        if self.passphrase.is_none() {
            self.passphrase = Some(self.ask(new)?);
            self.typed = std::env::var_os(PASSPHRASE_VARIABLE).is_none_or(|value| value.is_empty());
        }
        Ok(self.passphrase.as_deref().map_or(&[], Vec::as_slice))
    }

    fn ask(&self, new: bool) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let prompt = if new {
            format!(
                "New passphrase for {} (it encrypts the file store): ",
                self.path.display()
            )
        } else {
            format!("Passphrase for {}: ", self.path.display())
        };
        self.person.secret(&Ask {
            path: &self.path,
            variable: PASSPHRASE_VARIABLE,
            prompt,
            new,
        })
    }

    /// Changes the document under the lock and writes it back, unless
    /// `change` says it changed nothing.
    ///
    /// A run that has the passphrase writes a new file, with a new file key
    /// and salt. One that opened the file with the key this session keeps
    /// (`unlock`) has no passphrase, and writes the same header with a new
    /// payload (see `age::Encrypted::reencrypt` for why that is sound).
    fn update(&mut self, change: impl FnOnce(&mut Document) -> bool) -> Result<(), StoreError> {
        // Ask before taking the lock, so that no other writer waits on a
        // person typing; an unlocked file needs no passphrase.
        let new = !self.path.exists();
        if new || !self.unlocked_now() {
            self.passphrase(new)?;
        }
        create_private_dir(&self.dir).map_err(|err| self.write_error(&self.dir, err))?;
        let _lock = self.lock()?;
        self.remove_leftovers();
        let current = self.read()?;
        let mut document = match &current {
            Some(file) => self.open_file(file)?,
            None => Document::default(),
        };
        if !change(&mut document) {
            return Ok(());
        }
        let plaintext = document.to_json();
        let file = match (&current, &self.passphrase, &self.file_key) {
            (Some(current), None, Some(file_key)) => age::Encrypted::parse(current)
                .and_then(|encrypted| encrypted.reencrypt(file_key, &plaintext)),
            _ => age::encrypt(self.passphrase(new)?, LOG_N, &plaintext),
        };
        let file = file.map_err(|err| self.write_error(&self.path, err))?;
        self.replace(&file)?;
        if new {
            self.suggest_unlock();
        }
        Ok(())
    }

    /// `with-secrets unlock`: checks the passphrase against the file (made,
    /// empty, when there is none), then keeps its file key for this login
    /// session and user in the kernel's keyrings for `duration` (see
    /// `unlock`). Returns when that ends, and which session keyring holds
    /// its first half.
    #[cfg(target_os = "linux")]
    pub(crate) fn unlock(
        &mut self,
        duration: Duration,
    ) -> Result<(std::time::SystemTime, unlock::Session), StoreError> {
        // Before anyone is asked anything: can anything be kept here?
        unlock::session()?;
        self.session_keyring = false;
        if !self.path.exists() {
            self.update(|_| true)?;
        }
        let file = self
            .read()?
            .ok_or_else(|| self.unreadable("it went away while being unlocked".into()))?;
        let encrypted =
            age::Encrypted::parse(&file).map_err(|err| self.unreadable(err.to_string()))?;
        let file_key = self.key_from_passphrase(&encrypted)?;
        unlock::keep(&encrypted.salt(), &file_key, duration)
    }

    /// For `doctor`: whether this login session has unlocked the file, and
    /// until when; `None` when there is no file.
    #[cfg(target_os = "linux")]
    pub(crate) fn unlock_state(&self) -> Option<String> {
        let file = self.read().ok().flatten()?;
        let Ok(encrypted) = age::Encrypted::parse(&file) else {
            return Some("not an age file".into());
        };
        Some(match unlock::find(&encrypted.salt()) {
            Ok(Some(kept)) if encrypted.opens_with(&kept.key) => format!(
                "unlocked until {}",
                crate::term::when::describe_moment(kept.until)
            ),
            Ok(_) => "locked: runs ask for the passphrase; `with-secrets unlock` asks once for \
                      this login session"
                .into(),
            Err(err) => format!("locked, and {}", crate::term::printable::first_line(&err)),
        })
    }

    /// Waits for the exclusive lock on the lock file; it is released when
    /// the returned file is dropped, or when the process dies.
    fn lock(&self) -> Result<File, StoreError> {
        let path = self.lock_path();
        let file = private_options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|err| self.write_error(&path, err))?;
        match wait_for_lock(&file, self.lock_wait) {
            Ok(true) => Ok(file),
            Ok(false) => Err(StoreError::from(Common::Failed(format!(
                "another process has held the lock on {} for {} s; \
                 nothing was stored\n  if a with-secrets is stuck, stop it, \
                 then run this again (or give it longer with --timeout)",
                path.display(),
                self.lock_wait.as_secs_f32()
            )))),
            Err(err) => Err(self.write_error(&path, err)),
        }
    }

    fn unreadable(&self, reason: String) -> StoreError {
        StoreError::from(Common::Unreadable {
            path: self.path.clone(),
            reason,
        })
    }

    // A failed write is `Common::Failed`, which prints its message as it is.
    fn write_error(&self, path: &Path, err: impl std::fmt::Display) -> StoreError {
        StoreError::from(Common::Failed(format!(
            "cannot write {}: {err}; nothing was stored",
            path.display()
        )))
    }
}

impl Store for FileStore {
    fn name(&self) -> &'static str {
        "file"
    }

    fn get_all(&mut self, keys: &[Key<'_>]) -> Result<Vec<Option<Found>>, StoreError> {
        let Some(file) = self.read()? else {
            return Ok(keys.iter().map(|_| None).collect());
        };
        let document = self.open_file(&file)?;
        keys.iter()
            .map(|&key| {
                let matching: Vec<&Item> =
                    document.items.iter().filter(|item| item.is(key)).collect();
                // We keep one item per key; in a file edited by hand, the
                // last one wins, as the most recently added.
                matching
                    .last()
                    .map(|item| {
                        let secret = item.secret().map_err(|reason| self.unreadable(reason))?;
                        Ok(Found {
                            secret,
                            matches: matching.len(),
                            cached: None,
                        })
                    })
                    .transpose()
            })
            .collect()
    }

    fn set(&mut self, key: Key<'_>, label: &str, value: &Secret) -> Result<(), StoreError> {
        self.update(|document| {
            document.items.retain(|item| !item.is(key));
            document.items.push(Item::new(key, label, value));
            true
        })
    }

    /// One write for them all: one decryption and one encryption, not one
    /// per value.
    fn create_all(&mut self, items: &[(Key<'_>, String, &Secret)]) -> Result<(), StoreError> {
        self.update(|document| {
            for (key, label, value) in items {
                document.items.retain(|item| !item.is(*key));
                document.items.push(Item::new(*key, label, value));
            }
            true
        })
    }

    fn holds_values(&self) -> bool {
        self.path.exists()
    }

    fn delete(&mut self, key: Key<'_>) -> Result<usize, StoreError> {
        if !self.path.exists() {
            return Ok(0);
        }
        let mut removed = 0;
        self.update(|document| {
            let before = document.items.len();
            document.items.retain(|item| !item.is(key));
            removed = before - document.items.len();
            removed > 0
        })?;
        Ok(removed)
    }
}

/// Takes the exclusive lock on `file`, polling rather than blocking so that
/// a stuck holder cannot hang us: `Ok(false)` once `wait` has passed.
pub(crate) fn wait_for_lock(file: &File, wait: Duration) -> std::io::Result<bool> {
    let start = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(true),
            Err(fs::TryLockError::WouldBlock) if start.elapsed() < wait => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(fs::TryLockError::WouldBlock) => return Ok(false),
            Err(fs::TryLockError::Error(err)) => return Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::NOBODY;

    const KEY: Key<'static> = Key {
        service: "acme",
        username: "api",
    };

    fn store(dir: &Path) -> FileStore {
        let mut store = FileStore::in_dir(dir.join(DIR_NAME), &NOBODY);
        store.passphrase = Some(Zeroizing::new(b"test passphrase".to_vec()));
        store
    }

    #[test]
    fn a_missing_file_is_an_empty_store_that_needs_no_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = FileStore::in_dir(dir.path().join(DIR_NAME), &NOBODY);
        assert!(store.get_all(&[KEY]).unwrap()[0].is_none());
        assert_eq!(store.delete(KEY).unwrap(), 0);
        assert!(store.passphrase.is_none());
        assert!(!store.dir.exists());
    }

    #[test]
    fn set_replaces_and_delete_removes_one_item() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = store(dir.path());
        store.set(KEY, "label", &Secret::from("one")).unwrap();
        store.set(KEY, "label", &Secret::from("two")).unwrap();
        let found = store.get_all(&[KEY, KEY]).unwrap();
        for found in found {
            let found = found.unwrap();
            assert_eq!((found.secret.expose(), found.matches), (&b"two"[..], 1));
        }
        assert_eq!(store.delete(KEY).unwrap(), 1);
        assert_eq!(store.delete(KEY).unwrap(), 0);
        assert!(store.get_all(&[KEY]).unwrap()[0].is_none());
        let names: Vec<_> = fs::read_dir(&store.dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "only the file and its lock: {names:?}");
    }

    #[test]
    fn a_file_that_is_not_age_is_told_before_any_passphrase_is_asked() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = FileStore::in_dir(dir.path().to_owned(), &NOBODY);
        fs::write(&store.path, "{\"with-secrets\": 1, \"items\": []}").unwrap();
        let err = store.get_all(&[KEY]).unwrap_err().to_string();
        assert!(
            err.ends_with(
                "it is not a valid age file: it does not start with age-encryption.org/v1"
            ),
            "{err}"
        );
        assert!(store.passphrase.is_none());
    }

    #[test]
    fn a_wrong_passphrase_is_bad_password_and_is_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        store(dir.path())
            .set(KEY, "label", &Secret::from("v"))
            .unwrap();
        let mut other = store(dir.path());
        other.passphrase = Some(Zeroizing::new(b"wrong".to_vec()));
        let err = other.get_all(&[KEY]).unwrap_err();
        assert!(
            matches!(err.fault::<Common>(), Some(Common::BadPassword { .. })),
            "{err}"
        );
        assert!(other.passphrase.is_none());
    }
}
