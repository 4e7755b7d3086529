//! Values nobody needs to know, made on first use: an entry with
//! `generate` that the store has no value for gets a random one, stored
//! before the command sees it, so every later run reads the same.
//!
//! Runs that may generate take one lock for the user, before they look
//! anything up, and hold it until what they made is stored. Two `make -j`
//! jobs started together would otherwise both find nothing, both make a
//! value, and one would run with a value the store no longer holds. With
//! the lock the second one waits, then finds the first one's value. It is
//! taken only when an entry of the manifest has `generate`, and held for a
//! lookup, not for the command.

use std::fs::File;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use crate::manifest::Generate;
use crate::secret::Secret;
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
            StoreError::Platform(format!(
                "cannot read the operating system's random source to generate a value: {err}"
            ))
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

/// Waits, at most `timeout`, for the user's generation lock; it is released
/// when the file is dropped, or when the process ends however it ends.
/// `None` where there is no folder for it (no HOME): then runs are not
/// kept apart, which only matters to two first runs at once.
pub(crate) fn lock(timeout: Duration) -> Result<Option<File>, StoreError> {
    let Some(path) = lock_path() else {
        return Ok(None);
    };
    let fail = |err: &dyn std::fmt::Display| {
        StoreError::Platform(format!(
            "cannot use {} to keep runs that generate values apart: {err}",
            path.display()
        ))
    };
    if let Some(dir) = path.parent() {
        crate::store::file::create_private_dir(dir).map_err(|err| fail(&err))?;
    }
    let file = crate::store::file::private_options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|err| fail(&err))?;
    // Polled rather than blocking, so a stuck holder cannot hang us.
    let start = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) if start.elapsed() < timeout => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Platform(format!(
                    "another with-secrets run has held {} for {} s while generating values; \
                     nothing was generated\n  if a with-secrets is stuck (at a passphrase \
                     prompt?), stop it, then run this again (or give it longer with --timeout)",
                    path.display(),
                    timeout.as_secs_f32()
                )));
            }
            Err(std::fs::TryLockError::Error(err)) => return Err(fail(&err)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Charset;

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
