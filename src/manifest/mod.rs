//! The manifest, `secrets.toml`: which environment variable gets which
//! keyring entry. It never holds a value, and it is checked in, so it may
//! be hostile: where it is ([`locate`]), what it says ([`parse`]), and what
//! is wrong with it, shown without any string that could be a secret
//! ([`diagnostic`]).

mod diagnostic;
mod locate;
mod parse;

use std::fmt;
use std::path::PathBuf;

use crate::error::Error;
use crate::store::StoreKind;

pub(crate) use locate::{Located, locate};

/// The file name that discovery looks for.
pub(crate) const FILE_NAME: &str = "secrets.toml";

/// The largest manifest we read: 1 MiB. A real one maps a few dozen names
/// in a few kilobytes; anything near this size is the wrong file (a log, a
/// dump, `/dev/zero` given to `-m`), and reading it whole, parsing it and
/// looking up every entry in it would only make with-secrets slow to say so.
pub(crate) const MAX_BYTES: usize = 1 << 20;

/// The keys an entry may have.
const ENTRY_KEYS: &[&str] = &["service", "username", "optional", "description"];

/// Keys that people use when they put a secret's value where its reference belongs.
/// An entry with one of these is refused with advice, not just "unknown key".
const VALUE_KEYS: &[&str] = &[
    "value", "values", "val", "password", "passwd", "pass", "pwd", "secret", "token", "key",
    "api_key", "apikey", "default", "data", "content", "env",
];

/// A checked manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub path: PathBuf,
    /// The top-level `store`, if any.
    pub store: Option<StoreKind>,
    pub entries: Vec<Entry>,
    /// Where the `vault` store looks: the `[vault]` table.
    pub vault: VaultSettings,
}

/// The `[vault]` table: an entry `{ service = S, username = U }` is the key
/// `U` of the KV v2 secret `PREFIX/S` in the secrets engine at `MOUNT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultSettings {
    /// The KV v2 engine's mount path, without slashes around it.
    pub mount: String,
    /// Put before every service, without slashes around it; may be empty.
    pub prefix: String,
}

impl Default for VaultSettings {
    fn default() -> Self {
        Self {
            mount: "secret".to_owned(),
            prefix: String::new(),
        }
    }
}

/// One `[secrets]` entry: which environment variable gets which keyring item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: EnvName,
    pub service: String,
    pub username: String,
    pub optional: bool,
    pub description: Option<String>,
    /// 1-based line of the entry, for messages.
    pub line: usize,
}

/// An environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EnvName(String);

impl EnvName {
    pub(crate) fn new(name: &str) -> Option<Self> {
        Self::is_valid(name).then(|| Self(name.to_owned()))
    }

    pub fn is_valid(name: &str) -> bool {
        let mut bytes = name.bytes();
        matches!(bytes.next(), Some(b'A'..=b'Z' | b'a'..=b'z' | b'_'))
            && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EnvName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl Manifest {
    /// Reads and checks the manifest `locate` found. One found by walking up
    /// is refused if another user owns it (see [`locate::refuse_foreign`]), as
    /// checked on the very file that is then read.
    pub(crate) fn load(located: &Located) -> Result<Self, Error> {
        use std::io::Read as _;
        let path = located.path.as_path();
        let read_error = |source| Error::ManifestRead {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read_error)?;
        if located.walked {
            locate::refuse_foreign(path, &file)?;
        }
        // One byte past the limit is enough to know the file is too big, and
        // never reading more keeps `-m /dev/zero` from filling the memory.
        let mut bytes = Vec::new();
        file.take(MAX_BYTES as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(read_error)?;
        if bytes.len() > MAX_BYTES {
            // The limit may fall inside a character; the message is about size.
            let text = String::from_utf8_lossy(&bytes[..MAX_BYTES]);
            return Err(diagnostic::too_big(path, &text));
        }
        // Decode ourselves: a lossy decode would hide the problem, and the
        // toml error would not say where the bad byte is.
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(err) => {
                let valid = err.utf8_error().valid_up_to();
                let text = String::from_utf8_lossy(err.as_bytes()).into_owned();
                // Located after any byte-order mark, as `parse` does.
                let mark = if text.starts_with('\u{feff}') { 3 } else { 0 };
                return Err(diagnostic::located(
                    path,
                    &text[mark..],
                    valid - mark..valid - mark + 1,
                    "the file is not valid UTF-8".into(),
                ));
            }
        };
        Self::parse(path, &text)
    }

    /// The entry for variable `name`, if the manifest has one.
    pub(crate) fn entry(&self, name: &str) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|entry| entry.name.as_str() == name)
    }
}
