//! keyrings.alt's files, read-only: the plain-text `keyring_pass.cfg` that
//! Python's `keyring` falls back to on WSL and headless Linux, and the
//! password-protected `crypted_pass.cfg`.
//!
//! We read them so people can use what they already stored, and move it into
//! a real keyring with `with-secrets import --from keyrings-alt`. We never
//! write them: a plain-text secrets file is what this tool exists to replace.
//!
//! The format, as keyrings.alt 5 writes it with Python's configparser:
//! - an INI file; each section is the escaped service, each key the escaped
//!   username, lower-cased (configparser lower-cases keys);
//! - escaping keeps `[A-Za-z0-9]` of the UTF-8 bytes and writes every other
//!   byte as `_%02X`;
//! - each value is base64, wrapped over tab-indented continuation lines, of
//!   the UTF-8 password (plain text) or of a JSON object (encrypted: `salt`,
//!   `IV` and `password_encrypted`, each base64). The key is
//!   PBKDF2-HMAC-SHA1(password, salt, 1000 rounds, 32 bytes); the cipher is
//!   AES-256 in CFB mode with 8-bit segments (PyCryptodome's default); the
//!   plaintext is `pw:` followed by the password. The entry
//!   (`keyring-setting`, `password reference`) holds the known text
//!   `password reference value`, which tells a wrong password.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use aes::cipher::{AsyncStreamCipher, KeyIvInit};
use base64::Engine as _;
use zeroize::Zeroizing;

use super::escape::escape;
use super::{Ask, Person, Settings};
use super::{Found, Key, Store, StoreError};
use crate::secret::Secret;
use crate::store::Common;

pub(crate) const PLAINTEXT_FILE: &str = "keyring_pass.cfg";
pub(crate) const ENCRYPTED_FILE: &str = "crypted_pass.cfg";
/// Where the password for `crypted_pass.cfg` may come from, besides a prompt.
pub(crate) const PASSWORD_VARIABLE: &str = "WITH_SECRETS_KEYRINGS_ALT_PASSWORD";
const REFERENCE: (&str, &str) = ("keyring-setting", "password reference");
const REFERENCE_VALUE: &[u8] = b"password reference value";

pub(crate) struct KeyringsAlt {
    dir: PathBuf,
    /// Set once the plain-text warning has been printed.
    warned: bool,
    /// Who is asked for the encrypted file's password, and warned.
    person: &'static dyn Person,
}

impl KeyringsAlt {
    pub(crate) fn open(settings: &Settings) -> Result<Self, StoreError> {
        let person = settings.person;
        // As for the file store: with no folder to look in, there is no
        // store here at all.
        let dir = data_root().ok_or_else(|| {
            StoreError::from(Common::Unavailable {
                store: "keyrings-alt",
                reason:
                    "neither XDG_DATA_HOME nor HOME is set, so keyrings.alt's folder is unknown; \
                     set XDG_DATA_HOME"
                        .into(),
            })
        })?;
        Ok(Self {
            dir,
            warned: false,
            person,
        })
    }

    /// The password of the encrypted file, which Python holds as text.
    fn password(&self, path: &Path) -> Result<Zeroizing<String>, StoreError> {
        let bytes = self.person.secret(&Ask {
            path,
            variable: PASSWORD_VARIABLE,
            prompt: format!("Password for keyrings.alt's {}: ", path.display()),
            new: false,
        })?;
        String::from_utf8(bytes.to_vec())
            .map(Zeroizing::new)
            .map_err(|_| {
                StoreError::from(Common::BadPassword {
                    path: path.to_owned(),
                    variable: PASSWORD_VARIABLE,
                })
            })
    }

    /// Leaves out the plain-text warning, for `import`, which is its remedy.
    pub(crate) fn without_warning(mut self) -> Self {
        self.warned = true;
        self
    }

    pub(crate) fn plaintext_path(&self) -> PathBuf {
        self.dir.join(PLAINTEXT_FILE)
    }

    pub(crate) fn encrypted_path(&self) -> PathBuf {
        self.dir.join(ENCRYPTED_FILE)
    }

    /// The files that exist, with how many entries each holds (not counting
    /// the encrypted file's password reference).
    pub(crate) fn files(&self) -> Vec<(PathBuf, usize)> {
        [self.plaintext_path(), self.encrypted_path()]
            .into_iter()
            .filter_map(|path| {
                let ini = read_ini(&path).ok()??;
                let count = ini
                    .iter()
                    .filter(|(section, _)| **section != escape(REFERENCE.0))
                    .map(|(_, options)| options.len())
                    .sum();
                Some((path, count))
            })
            .collect()
    }
}

impl Store for KeyringsAlt {
    fn name(&self) -> &'static str {
        "keyrings-alt"
    }

    /// Never a place for new values: this store is read-only (for
    /// `import --from` and reading what is there), so nothing is generated
    /// into it.
    fn holds_values(&self) -> bool {
        false
    }

    fn get_all(&mut self, keys: &[Key<'_>]) -> Result<Vec<Option<Found>>, StoreError> {
        let mut found: Vec<Option<Found>> = keys.iter().map(|_| None).collect();
        let plaintext_path = self.plaintext_path();
        if let Some(ini) = read_ini(&plaintext_path)? {
            for (slot, key) in found.iter_mut().zip(keys) {
                if let Some(value) = lookup(&ini, *key) {
                    let secret = decode_base64(value)
                        .map_err(|reason| unreadable(&plaintext_path, reason))?;
                    *slot = Some(Found {
                        secret,
                        matches: 1,
                        cached: None,
                    });
                }
            }
            if found.iter().any(Option::is_some) && !self.warned {
                self.warned = true;
                self.person.warn(&format!(
                    "with-secrets: warning: {} keeps secrets in plain text; move them into \
                     your keyring with: with-secrets import --from keyrings-alt",
                    plaintext_path.display()
                ));
            }
        }
        // The encrypted file costs a password, so it is only read for what
        // the plain-text file lacks.
        if found.iter().all(Option::is_some) {
            return Ok(found);
        }
        let encrypted_path = self.encrypted_path();
        let Some(ini) = read_ini(&encrypted_path)? else {
            return Ok(found);
        };
        let wanted: Vec<usize> = (0..keys.len())
            .filter(|&i| found[i].is_none() && lookup(&ini, keys[i]).is_some())
            .collect();
        if wanted.is_empty() {
            return Ok(found);
        }
        let password = self.password(&encrypted_path)?;
        let decrypt = |key: Key<'_>| -> Result<Option<Secret>, StoreError> {
            lookup(&ini, key)
                .map(|value| {
                    decrypt(value, &password).map_err(|reason| unreadable(&encrypted_path, reason))
                })
                .transpose()
        };
        let reference = Key {
            service: REFERENCE.0,
            username: REFERENCE.1,
        };
        // A wrong password decrypts to noise rather than failing, so check the
        // known reference value first, as keyrings.alt does.
        let wrong = StoreError::from(Common::BadPassword {
            path: encrypted_path.clone(),
            variable: PASSWORD_VARIABLE,
        });
        match decrypt(reference) {
            Ok(Some(value)) if value.expose() == REFERENCE_VALUE => {}
            Ok(Some(_)) | Err(_) => return Err(wrong),
            // No reference: keyrings.alt would not trust this file, so neither do we.
            Ok(None) => {
                return Err(unreadable(
                    &encrypted_path,
                    "it has no password reference entry".into(),
                ));
            }
        }
        for i in wanted {
            if let Some(secret) = decrypt(keys[i])? {
                found[i] = Some(Found {
                    secret,
                    matches: 1,
                    cached: None,
                });
            }
        }
        Ok(found)
    }

    fn set(&mut self, _key: Key<'_>, _label: &str, _value: &Secret) -> Result<(), StoreError> {
        Err(StoreError::from(Common::ReadOnly {
            store: "keyrings-alt",
        }))
    }

    fn delete(&mut self, _key: Key<'_>) -> Result<usize, StoreError> {
        Err(StoreError::from(Common::ReadOnly {
            store: "keyrings-alt",
        }))
    }
}

/// Python keyring's data folder: `$XDG_DATA_HOME/python_keyring`, else
/// `~/.local/share/python_keyring` (on Windows, `%LOCALAPPDATA%\Python Keyring`).
fn data_root() -> Option<PathBuf> {
    let folder = if cfg!(windows) {
        "Python Keyring"
    } else {
        "python_keyring"
    };
    crate::paths::python_keyring_home().map(|root| root.join(folder))
}

fn unreadable(path: &Path, reason: String) -> StoreError {
    StoreError::from(Common::Unreadable {
        path: path.to_owned(),
        reason,
    })
}

/// Sections, then keys, as Python's configparser reads them: `key = value` or
/// `key: value`, continuation lines indented, `#` and `;` comment lines.
type Ini = HashMap<String, HashMap<String, String>>;

fn read_ini(path: &Path) -> Result<Option<Ini>, StoreError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8(bytes)
                .map_err(|_| unreadable(path, "it is not valid UTF-8".into()))?;
            Ok(Some(parse_ini(&text)))
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(unreadable(path, err.to_string())),
    }
}

fn parse_ini(text: &str) -> Ini {
    let mut ini = Ini::new();
    let mut section: Option<String> = None;
    let mut option: Option<String> = None;
    for line in text.lines() {
        let trimmed = line.trim();
        let indented = line.starts_with([' ', '\t']);
        if indented && !trimmed.is_empty() {
            if let (Some(section), Some(option)) = (&section, &option)
                && let Some(value) = ini.get_mut(section).and_then(|s| s.get_mut(option))
            {
                value.push('\n');
                value.push_str(trimmed);
            }
            continue;
        }
        if trimmed.is_empty() || trimmed.starts_with(['#', ';']) {
            continue;
        }
        if let Some(name) = trimmed.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            ini.entry(name.to_owned()).or_default();
            section = Some(name.to_owned());
            option = None;
            continue;
        }
        let Some(split) = trimmed.find(['=', ':']) else {
            continue;
        };
        let key = trimmed[..split].trim().to_lowercase();
        let value = trimmed[split + 1..].trim().to_owned();
        if let Some(section) = &section {
            ini.entry(section.clone())
                .or_default()
                .insert(key.clone(), value);
            option = Some(key);
        }
    }
    ini
}

fn lookup<'a>(ini: &'a Ini, key: Key<'_>) -> Option<&'a str> {
    ini.get(&escape(key.service))?
        .get(&escape(key.username).to_lowercase())
        .map(String::as_str)
}

/// Base64 as Python's `decodebytes` reads it: line breaks and spaces ignored.
fn decode_base64(text: &str) -> Result<Secret, String> {
    let compact: Zeroizing<String> =
        Zeroizing::new(text.chars().filter(|c| !c.is_ascii_whitespace()).collect());
    base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map(Secret::new)
        .map_err(|_| "a value is not valid base64".to_owned())
}

fn decrypt(value: &str, password: &str) -> Result<Secret, String> {
    let json = decode_base64(value)?;
    let payload: serde_json::Value = serde_json::from_slice(json.expose())
        .map_err(|_| "a value is not keyrings.alt's encrypted JSON".to_owned())?;
    let field = |name: &str| {
        payload[name]
            .as_str()
            .ok_or_else(|| format!("an encrypted value has no `{name}`"))
            .and_then(decode_base64)
    };
    let salt = field("salt")?;
    let iv = field("IV")?;
    let iv: [u8; 16] = iv
        .expose()
        .try_into()
        .map_err(|_| "an IV is not 16 bytes".to_owned())?;
    let mut key = Zeroizing::new([0u8; 32]);
    pbkdf2::pbkdf2_hmac::<sha1::Sha1>(password.as_bytes(), salt.expose(), 1000, key.as_mut());
    let mut buffer = field("password_encrypted")?.into_bytes();
    cfb8::Decryptor::<aes::Aes256>::new(key.as_ref().into(), &iv.into()).decrypt(&mut buffer);
    match buffer.strip_prefix(b"pw:") {
        Some(password) => Ok(Secret::new(password.to_vec())),
        None => Err("a value did not decrypt (wrong password?)".to_owned()),
    }
}

/// For `doctor`: each keyrings.alt file there is, with how many entries it
/// holds and what to do about plain-text ones; each as (label, text).
pub(crate) fn report(settings: &Settings) -> Vec<(&'static str, String)> {
    let Ok(alt) = KeyringsAlt::open(settings) else {
        return Vec::new();
    };
    alt.files()
        .into_iter()
        .map(|(path, count)| {
            let plain = path.ends_with(PLAINTEXT_FILE);
            let text = format!(
                "{} ({count} entr{}{})",
                path.display(),
                if count == 1 { "y" } else { "ies" },
                if plain {
                    ", plain text: move them with `with-secrets import --from keyrings-alt`"
                } else {
                    ", encrypted"
                }
            );
            ("keyrings.alt:", text)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_matches_keyrings_alt() {
        assert_eq!(escape("acme-api"), "acme_2Dapi");
        assert_eq!(escape("CI Bot"), "CI_20Bot");
        assert_eq!(escape("é"), "_C3_A9");
        assert_eq!(escape("a_b"), "a_5Fb");
    }

    /// The documented rule backwards: `[A-Za-z0-9]` stands for itself, and
    /// `_` followed by two upper-case hex digits for that byte.
    fn unescape(escaped: &str) -> Option<Vec<u8>> {
        let mut bytes = escaped.bytes();
        let mut out = Vec::new();
        while let Some(byte) = bytes.next() {
            match byte {
                b'_' => {
                    let hex = [bytes.next()?, bytes.next()?];
                    if !hex.iter().all(|b| matches!(b, b'0'..=b'9' | b'A'..=b'F')) {
                        return None;
                    }
                    out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
                }
                b if b.is_ascii_alphanumeric() => out.push(b),
                _ => return None,
            }
        }
        Some(out)
    }

    proptest::proptest! {
        #[test]
        fn escaping_keeps_to_its_alphabet_and_unescapes_to_the_original_bytes(
            value in proptest::prop_oneof![
                proptest::arbitrary::any::<String>(),
                "[a-zA-Z0-9_%. -]{0,16}",
            ]
        ) {
            let escaped = escape(&value);
            proptest::prop_assert!(
                escaped.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
                "{escaped}"
            );
            proptest::prop_assert_eq!(unescape(&escaped), Some(value.as_bytes().to_vec()));
        }

        #[test]
        fn different_values_never_escape_alike(a in ".{0,8}", b in ".{0,8}") {
            proptest::prop_assume!(a != b);
            proptest::prop_assert_ne!(escape(&a), escape(&b));
        }
    }

    #[test]
    fn configparser_output_is_read_with_continuations() {
        let ini = parse_ini(
            "[acme_2Dapi]\nci_20bot = \n\taGVs\n\tbG8=\n\n[other]\nkey: dmFs\n; comment\n",
        );
        let key = Key {
            service: "acme-api",
            username: "CI Bot",
        };
        let value = lookup(&ini, key).unwrap();
        assert_eq!(decode_base64(value).unwrap().expose(), b"hello");
        let other = Key {
            service: "other",
            username: "KEY",
        };
        assert_eq!(lookup(&ini, other), Some("dmFs"));
    }

    #[test]
    fn a_value_that_is_not_base64_is_an_error_that_shows_nothing_of_it() {
        let err = decode_base64("not base64 !!").unwrap_err();
        assert!(!err.contains("not base64 !!"));
    }
}
