//! Values nobody needs to know, made on first use: an entry with
//! `generate` that the store has no value for gets a random one, stored
//! before the command sees it, so every later run reads the same.
//!
//! Two `make -j` jobs started together would both find nothing, both make a
//! value, and one would run with a value the store no longer holds. So a
//! run that finds something to generate takes one lock for the user (a file
//! in with-secrets' data folder), and holds it until what it made is
//! stored. The lookup itself takes no lock: most runs have nothing to
//! generate, a store may prompt (the file store's passphrase) and a
//! person's typing must not hold other runs up, and with no store (CI)
//! there is nothing to lock for.
//!
//! A run that takes the lock must then know whether another run stored
//! values since it looked. Each run that stores generated values writes a
//! new random mark into the lock file before it lets go; a run reads the
//! mark before its lookup and again once it holds the lock. The same mark
//! means nobody generated anything in between, and the lookup stands; any
//! other (or a half-written one) means look again, for the missing keys
//! only. So an uncontended first run costs one more call to the store (the
//! write), and only a run that waited costs two.
//!
//! The rule for a write is in one place, [`Held::write`]: the write runs
//! while the lock is held, a new mark is left only once it succeeded, and
//! the lock is let go either way. [`write_under_lock`] wraps it for a
//! writer of one entry's value (`set`).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use zeroize::Zeroizing;

use crate::manifest::{Entry, Generate};
use crate::secret::Secret;
use crate::store::Common;
use crate::store::StoreError;

/// A new random value by `rule`: each character drawn uniformly from the
/// charset, from the operating system's random source.
pub(crate) fn value(rule: Generate) -> Result<Secret, StoreError> {
    let alphabet = rule.charset.alphabet();
    // Bytes at or above the largest multiple of the alphabet's size are
    // drawn again: `byte % size` would make the first `256 % size`
    // characters more likely (modulo bias). For 16 and 64 nothing is
    // dropped; for 62, 8 bytes in 256 are.
    let size = alphabet.len();
    let limit = 256 - 256 % size;
    let mut value = Zeroizing::new(Vec::with_capacity(rule.length));
    let mut random = Zeroizing::new([0u8; 256]);
    while value.len() < rule.length {
        getrandom::getrandom(&mut *random).map_err(|err| {
            StoreError::from(Common::Failed(format!(
                "cannot read the operating system's random source to generate a value: {err}"
            )))
        })?;
        for &byte in random.iter().filter(|&&byte| usize::from(byte) < limit) {
            if value.len() == rule.length {
                break;
            }
            value.push(alphabet[usize::from(byte) % size]);
        }
    }
    Ok(Secret::new(std::mem::take(&mut *value)))
}

/// Where the lock is: beside the file store, in with-secrets' own folder.
fn lock_path() -> Option<PathBuf> {
    crate::store::file::FileStore::default_dir().map(|dir| dir.join("generate.lock"))
}

/// The lock file's mark as a lookup starts ([`mark`]): `None` when it
/// could not be read, which means "look again".
pub(crate) struct Mark(Option<Vec<u8>>);

/// A mark is 16 hex digits; more is not a mark we wrote.
const MARK_BYTES: u64 = 16;

/// Reads the mark before a lookup: empty when there is no lock file yet.
pub(crate) fn mark() -> Mark {
    mark_at(lock_path().as_deref())
}

/// [`mark`], of the lock file at `path`.
fn mark_at(path: Option<&Path>) -> Mark {
    let Some(path) = path else {
        return Mark(Some(Vec::new()));
    };
    Mark(match open_regular(path, false) {
        Ok(mut file) => read_mark(&mut file).ok(),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Some(Vec::new()),
        Err(_) => None,
    })
}

/// Opens `path` without waiting (a FIFO put there would block an open or a
/// read forever), and only if it is a regular file.
fn open_regular(path: &Path, create: bool) -> std::io::Result<File> {
    let mut options = crate::store::file::private_options();
    options
        .read(true)
        .write(create)
        .create(create)
        .truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
    let file = options.open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    Ok(file)
}

/// The mark, through `file`: on Windows the lock keeps any other handle,
/// even this process's, from reading the file.
fn read_mark(file: &mut File) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Seek};
    file.rewind()?;
    let mut mark = Vec::new();
    file.take(MARK_BYTES + 1).read_to_end(&mut mark)?;
    Ok(mark)
}

/// The lock, held; it is let go when this is dropped, or when the process
/// ends however it ends. A new mark is left only by [`Held::write`].
#[must_use = "the lock is let go at once; store through `Held::write`"]
pub(crate) struct Held {
    file: Option<File>,
    /// See [`Held::look_again`].
    look_again: bool,
}

impl Held {
    /// Held by nobody: for unit tests, and where no lock could be made.
    pub(crate) fn none(look_again: bool) -> Self {
        Self {
            file: None,
            look_again,
        }
    }

    /// Whether another run may have stored values since this one looked
    /// (the mark changed, or could not be read): then look again before
    /// generating.
    pub(crate) fn look_again(&self) -> bool {
        self.look_again
    }

    /// Runs `write`, which stores values, while the lock is held; leaves a
    /// new mark if it succeeded, so that a run waiting for the lock looks
    /// again and finds them; then lets the lock go. A write that failed
    /// leaves the mark as it was: a waiting run's lookup stands, and it is
    /// not sent to look again for nothing.
    ///
    /// Taking `self` keeps the mark from being left before the write, or
    /// twice. Dropping a `Held` without calling this lets the lock go with
    /// no new mark: what a run does when, having looked again, it has
    /// nothing left to store.
    ///
    /// A run that generates missing values (`resolve`) calls this rather
    /// than [`write_under_lock`]: it reads the mark before its lookup, not
    /// as it locks; it takes the lock only once it knows values are
    /// missing, through a lock its tests can stand in for; and between
    /// taking the lock and writing it may look again and find nothing left
    /// to write.
    pub(crate) fn write<T, E>(self, write: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        let written = write()?;
        self.stored();
        Ok(written)
    }

    /// After values are stored: a new mark, so that a run waiting for the
    /// lock looks again.
    fn stored(mut self) {
        use std::io::{Seek, Write};
        let Some(file) = &mut self.file else { return };
        let mut mark = [0u8; MARK_BYTES as usize / 2];
        if getrandom::getrandom(&mut mark).is_err() {
            // Still unlike any mark before it.
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |since| since.as_nanos());
            mark = ((nanos as u64) ^ u64::from(std::process::id()).rotate_left(32)).to_le_bytes();
        }
        let text = crate::store::escape::hex(&mark);
        // A half-written mark is unlike any other: a waiting run looks
        // again. An unchanged one, after a failure to write (a full disk),
        // may let a run generate again: warn.
        let written = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(text.as_bytes()));
        if let Err(err) = written {
            crate::warning!(
                "with-secrets: warning: cannot update the generation lock's mark: {err}; a run \
                 started at the same moment may generate values again"
            );
        }
    }
}

/// Waits, at most `timeout`, for the user's generation lock. Where no lock
/// file can be made (no data folder, or one that cannot be written, as for
/// a user with `HOME=/nonexistent`), says so and goes on without one:
/// values are still generated, but runs started at the same moment are not
/// kept apart.
pub(crate) fn lock(mark: &Mark, timeout: Duration) -> Result<Held, StoreError> {
    lock_at(lock_path().as_deref(), mark, timeout)
}

/// [`lock`], of the lock file at `path`.
fn lock_at(path: Option<&Path>, mark: &Mark, timeout: Duration) -> Result<Held, StoreError> {
    let Some(path) = path else {
        crate::warning!(
            "with-secrets: warning: neither XDG_DATA_HOME nor HOME is set, so there is no folder \
             for the lock that keeps runs that generate values apart; generating without it"
        );
        return Ok(Held::none(false));
    };
    let opened = path
        .parent()
        .map_or(Ok(()), crate::store::file::create_private_dir)
        .and_then(|()| open_regular(path, true));
    let mut file = match opened {
        Ok(file) => file,
        Err(err) => {
            crate::warning!(
                "with-secrets: warning: cannot make {}, the lock that keeps runs that generate \
                 values apart: {err}; generating without it (set XDG_DATA_HOME to a folder you \
                 can write to)",
                path.display()
            );
            return Ok(Held::none(false));
        }
    };
    match crate::store::file::wait_for_lock(&file, timeout) {
        Ok(true) => {}
        Ok(false) => {
            return Err(StoreError::from(Common::Failed(format!(
                "waited {} s for another with-secrets run that is generating values (it \
                 holds {}); nothing was generated\n  if a with-secrets is stuck, stop it, \
                 then run this again (or give it longer with --timeout)",
                timeout.as_secs_f32(),
                path.display()
            ))));
        }
        Err(err) => {
            crate::warning!(
                "with-secrets: warning: cannot lock {}: {err}; generating without the lock",
                path.display()
            );
            return Ok(Held::none(false));
        }
    }
    let now = read_mark(&mut file).ok();
    Ok(Held {
        look_again: now.is_none() || mark.0.is_none() || now != mark.0,
        file: Some(file),
    })
}

/// Stores a value for `entry` with `write`: under the generation lock
/// when, and only when, `entry` has `generate` (a run may be generating
/// that value at this moment), leaving a new mark if the write succeeded,
/// so that the run looks again and finds this value instead of storing
/// its own over it (see [`Held::write`]). Waits for the lock at most
/// `timeout`; when another run holds it longer, nothing is written and the
/// error says so.
///
/// What others stored does not change what this writes, so the mark is
/// read as the lock is taken, and [`Held::look_again`] goes unread.
pub(crate) fn write_under_lock<T>(
    entry: &Entry,
    timeout: Duration,
    write: impl FnOnce() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    write_under_lock_at(lock_path().as_deref(), entry, timeout, write)
}

/// [`write_under_lock`], with the lock file at `path`.
fn write_under_lock_at<T>(
    path: Option<&Path>,
    entry: &Entry,
    timeout: Duration,
    write: impl FnOnce() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    if entry.generate.is_none() {
        return write();
    }
    lock_at(path, &mark_at(path), timeout)?.write(write)
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::manifest::{Charset, Manifest};

    /// `MADE`, with `generate`, and `TYPED`, without.
    fn entries() -> Manifest {
        Manifest::parse(
            Path::new("secrets.toml"),
            r#"
[secrets]
MADE = { service = "s", username = "made", generate = true }
TYPED = { service = "s", username = "typed" }
"#,
        )
        .unwrap()
    }

    fn refused() -> StoreError {
        StoreError::from(Common::Failed("refused".into()))
    }

    /// Whether another run could take the lock at `path` now, without
    /// waiting.
    fn free(path: &Path) -> bool {
        lock_at(Some(path), &mark_at(Some(path)), Duration::ZERO).is_ok()
    }

    #[test]
    fn a_successful_write_under_the_lock_leaves_a_new_mark_and_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("generate.lock");
        let manifest = entries();
        let before = mark_at(Some(&path));
        let written = Cell::new(0);
        let got = write_under_lock_at(Some(&path), &manifest.entries[0], Duration::ZERO, || {
            written.set(written.get() + 1);
            // The write runs while the lock is held.
            assert!(!free(&path), "written without the lock");
            Ok("stored")
        });
        assert_eq!(got.unwrap(), "stored");
        assert_eq!(written.get(), 1);
        // A run that read the mark before this write looks again.
        let held = lock_at(Some(&path), &before, Duration::ZERO).unwrap();
        assert!(held.look_again(), "no new mark after a write");
        drop(held);
        // And each write leaves a mark unlike the last.
        let after = mark_at(Some(&path));
        write_under_lock_at(Some(&path), &manifest.entries[0], Duration::ZERO, || Ok(())).unwrap();
        assert!(
            lock_at(Some(&path), &after, Duration::ZERO)
                .unwrap()
                .look_again()
        );
    }

    #[test]
    fn a_failed_write_under_the_lock_leaves_the_mark_as_it_was_and_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("generate.lock");
        let manifest = entries();
        // A mark left by an earlier write, so that one left by this write
        // would differ from it.
        write_under_lock_at(Some(&path), &manifest.entries[0], Duration::ZERO, || Ok(())).unwrap();
        let before = mark_at(Some(&path));
        let written = Cell::new(0);
        let got: Result<(), _> =
            write_under_lock_at(Some(&path), &manifest.entries[0], Duration::ZERO, || {
                written.set(written.get() + 1);
                Err(refused())
            });
        assert_eq!(got.unwrap_err().to_string(), refused().to_string());
        assert_eq!(written.get(), 1);
        // A run that looked before it has no reason to look again, and
        // need not wait.
        let held = lock_at(Some(&path), &before, Duration::ZERO).unwrap();
        assert!(!held.look_again(), "a new mark for a write that failed");
    }

    #[test]
    fn a_write_waits_for_the_lock_only_for_an_entry_with_generate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("generate.lock");
        let manifest = entries();
        let (made, typed) = (&manifest.entries[0], &manifest.entries[1]);
        // Another run holds the lock.
        let other = lock_at(Some(&path), &mark_at(Some(&path)), Duration::ZERO).unwrap();
        let before = mark_at(Some(&path));
        let written = Cell::new(0);
        let write = || {
            written.set(written.get() + 1);
            Ok(())
        };
        // Without `generate`: written at once, with no lock and no mark.
        write_under_lock_at(Some(&path), typed, Duration::ZERO, write).unwrap();
        assert_eq!(written.get(), 1);
        // With it: not written while the other run holds the lock.
        let err = write_under_lock_at(Some(&path), made, Duration::ZERO, write).unwrap_err();
        assert!(err.to_string().contains("nothing was generated"), "{err}");
        assert_eq!(written.get(), 1, "written without the lock");
        drop(other);
        assert!(
            !lock_at(Some(&path), &before, Duration::ZERO)
                .unwrap()
                .look_again()
        );
    }

    #[test]
    fn a_value_has_the_length_and_only_the_characters_asked_for() {
        for charset in Charset::ALL {
            for length in [16, 32, 257, 4096] {
                let value = value(Generate { length, charset }).unwrap();
                assert_eq!(value.expose().len(), length);
                assert!(
                    value
                        .expose()
                        .iter()
                        .all(|byte| charset.alphabet().contains(byte)),
                    "{charset:?}"
                );
            }
        }
        assert_ne!(
            value(Generate::DEFAULT).unwrap().expose(),
            value(Generate::DEFAULT).unwrap().expose()
        );
    }

    /// Without the rejection, `byte % 62` makes the first 8 characters
    /// (`A` to `H`) 5/4 as likely as the rest: over 6,200,000 characters
    /// each would be drawn about 121,000 times instead of 100,000, some 65
    /// standard deviations off. A uniform draw keeps every count within 6
    /// standard deviations (about 1,900) of 100,000.
    #[test]
    fn every_alphanumeric_character_is_equally_likely() {
        let mut counts = [0u64; 256];
        let rule = Generate {
            length: 4096,
            charset: Charset::Alphanumeric,
        };
        for _ in 0..6_200_000 / 4096 {
            for &byte in value(rule).unwrap().expose() {
                counts[usize::from(byte)] += 1;
            }
        }
        let total: u64 = counts.iter().sum();
        let expected = total as f64 / 62.0;
        let deviation = (expected * (1.0 - 1.0 / 62.0)).sqrt();
        for &byte in Charset::Alphanumeric.alphabet() {
            let off = (counts[usize::from(byte)] as f64 - expected).abs() / deviation;
            assert!(
                off < 6.0,
                "{}: {} draws, {off:.1} standard deviations from {expected:.0}",
                char::from(byte),
                counts[usize::from(byte)]
            );
        }
    }
}
