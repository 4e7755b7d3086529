//! The manifest, `secrets.toml`: which environment variable gets which
//! keyring entry. It never holds a value, and it is checked in, so it may
//! be hostile: where it is ([`locate`]), what it says ([`parse`]), and what
//! is wrong with it, shown without any string that could be a secret
//! ([`diagnostic`], [`Error`]).

mod diagnostic;
mod error;
mod keys;
mod locate;
mod parse;
pub(crate) mod schema;

use std::fmt;
use std::path::PathBuf;

use crate::store::StoreKind;
/// The `[vault]` table parses into the vault store's own settings.
pub use crate::store::vault::Settings as VaultSettings;

pub use error::Error;
pub(crate) use locate::{Located, locate};

/// The file name that discovery looks for.
pub(crate) const FILE_NAME: &str = "secrets.toml";

/// The largest manifest we read: 1 MiB. A real one maps a few dozen names
/// in a few kilobytes; anything near this size is the wrong file (a log, a
/// dump, `/dev/zero` given to `-m`), and reading it whole, parsing it and
/// looking up every entry in it would only make with-secrets slow to say so.
pub(crate) const MAX_BYTES: usize = 1 << 20;

/// Whether `name` may name a profile: 1 to 64 ASCII letters, digits, `-`
/// and `_`, so that it is a word a shell leaves alone in a fix line.
pub(crate) fn is_profile_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A checked manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub path: PathBuf,
    /// The text as it was parsed (after a byte-order mark), for errors
    /// found once the store is known: the file is never read twice.
    pub(crate) text: std::sync::Arc<str>,
    /// The top-level `store`, if any.
    pub store: Option<StoreKind>,
    pub entries: Vec<Entry>,
    /// Where the `vault` store looks: the `[vault]` table.
    pub vault: VaultSettings,
    /// Every `[profiles.NAME]`, in the order of the file.
    pub profiles: Vec<Profile>,
}

/// A `[profiles.NAME]` table: what changes when `--profile NAME` is given.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    /// The profile's `store`, which comes before the manifest's.
    pub store: Option<StoreKind>,
    /// `[profiles.NAME.defaults]`'s service: under this profile it replaces
    /// `[defaults]`'s for every entry that names no service of its own.
    pub default_service: Option<String>,
    /// `[profiles.NAME.secrets]`: replace the same-named `[secrets]` entries,
    /// or add to them.
    pub entries: Vec<Entry>,
}

/// One `[secrets]` entry: which environment variable gets which keyring item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: EnvName,
    pub service: String,
    pub username: String,
    pub optional: bool,
    pub description: Option<String>,
    /// `generate`: made and stored when the store has no value for it.
    pub generate: Option<Generate>,
    /// Whether `service` came from a `[defaults]` table rather than the
    /// entry itself, so that a profile's defaults may replace it.
    pub service_from_defaults: bool,
    /// 1-based line of the entry, for messages.
    pub line: usize,
}

/// How to make a value nobody needs to know: `generate = true` or
/// `generate = { length = N, charset = "..." }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generate {
    /// Characters, 16 to 4096.
    pub length: usize,
    pub charset: Charset,
}

impl Generate {
    pub const DEFAULT: Self = Self {
        length: 32,
        charset: Charset::Alphanumeric,
    };
    pub const LENGTHS: std::ops::RangeInclusive<usize> = 16..=4096;
}

/// The characters a generated value is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    /// `A-Z`, `a-z`, `0-9`.
    Alphanumeric,
    /// `0-9`, `a-f`.
    Hex,
    /// `A-Z`, `a-z`, `0-9`, `-`, `_` (RFC 4648's URL-safe alphabet).
    Base64Url,
}

impl Charset {
    pub const ALL: [Self; 3] = [Self::Alphanumeric, Self::Hex, Self::Base64Url];

    pub fn spelling(self) -> &'static str {
        match self {
            Self::Alphanumeric => "alphanumeric",
            Self::Hex => "hex",
            Self::Base64Url => "base64url",
        }
    }

    pub fn alphabet(self) -> &'static [u8] {
        match self {
            Self::Alphanumeric => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
            Self::Hex => b"0123456789abcdef",
            Self::Base64Url => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
        }
    }
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
            named_by: located.named_by,
            source,
        };
        let file = std::fs::File::open(path).map_err(read_error)?;
        if located.named_by.is_none() {
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

    /// The manifest as profile `name` sees it: `[secrets]`, with the
    /// profile's entries replacing the same-named ones (in their place) or
    /// added after them, and the profile's `[defaults]` service in place of
    /// the manifest's. Also the profile's `store`, which comes before the
    /// manifest's. An unknown name is an error that lists the profiles there
    /// are.
    /// `from` says where the name came from, for the message.
    pub fn with_profile(
        mut self,
        name: &str,
        from: &'static str,
    ) -> Result<(Self, Option<StoreKind>), Error> {
        let Some(profile) = self.profiles.iter().find(|p| p.name == name).cloned() else {
            return Err(Error::UnknownProfile {
                name: name.to_owned(),
                from,
                path: self.path,
                profiles: self.profiles.into_iter().map(|p| p.name).collect(),
            });
        };
        if let Some(service) = &profile.default_service {
            for entry in self.entries.iter_mut().filter(|e| e.service_from_defaults) {
                entry.service.clone_from(service);
            }
        }
        let mut index: std::collections::HashMap<EnvName, usize> = self
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.name.clone(), i))
            .collect();
        for entry in profile.entries {
            match index.get(&entry.name) {
                Some(&slot) => self.entries[slot] = entry,
                None => {
                    index.insert(entry.name.clone(), self.entries.len());
                    self.entries.push(entry);
                }
            }
        }
        Ok((self, profile.store))
    }

    /// The entry for variable `name`, if the manifest has one.
    pub(crate) fn entry(&self, name: &str) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|entry| entry.name.as_str() == name)
    }
}
