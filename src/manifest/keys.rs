//! The keys a `[secrets]` entry may have, in one table that the parser's
//! unknown-key message and the snippet masker both read: a new key is one
//! row here plus one arm in `parse::entry`, and a unit test there fails
//! if either is missing.

/// One key an entry may have.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EntryKey {
    pub name: &'static str,
    /// What its value must be.
    #[cfg_attr(not(test), expect(dead_code, reason = "for help, not yet read"))]
    pub expects: Expects,
    /// Whether an error snippet may show its string value. Only for keys
    /// that name where a secret is, never for one that could hold a secret
    /// or a piece of it: any other string is shown as `***`.
    pub shown: bool,
    /// What it is for, as the README's manifest reference says it (for
    /// help and the README later).
    #[cfg_attr(not(test), expect(dead_code, reason = "for help, not yet read"))]
    pub description: &'static str,
}

/// The type of value an entry key takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expects {
    /// A string that is not empty.
    Name,
    /// Any string.
    Text,
    /// `true` or `false`.
    Boolean,
    /// `true`, `false` or `{ length = N, charset = "..." }`.
    Generate,
}

impl Expects {
    /// A value of this type, as TOML.
    #[cfg(test)]
    pub(crate) fn example(self) -> &'static str {
        match self {
            Self::Name | Self::Text => "\"x\"",
            Self::Boolean => "true",
            Self::Generate => "{ length = 20, charset = \"hex\" }",
        }
    }
}

/// Every key an entry may have, in the order the unknown-key message lists
/// them.
pub(crate) const ENTRY_KEYS: &[EntryKey] = &[
    EntryKey {
        name: "service",
        expects: Expects::Name,
        shown: true,
        description: "the keyring service (Python keyring's `service`); required unless \
                      `[defaults]` has one; not empty",
    },
    EntryKey {
        name: "username",
        expects: Expects::Name,
        shown: true,
        description: "the account within the service (Python keyring's `username`); required; \
                      not empty",
    },
    EntryKey {
        name: "optional",
        expects: Expects::Boolean,
        shown: false,
        description: "`true`: a missing value leaves the variable unset instead of stopping the \
                      run; default `false`",
    },
    EntryKey {
        name: "description",
        expects: Expects::Text,
        shown: true,
        description: "free text shown beside the name when the entry is missing",
    },
    EntryKey {
        name: "generate",
        expects: Expects::Generate,
        shown: false,
        description: "`true` or `{ length = N, charset = \"...\" }`: a missing value is made and \
                      stored on first use (see \"Generated values\"); not with `optional`",
    },
];

/// Keys outside an entry whose string value a snippet may show: the
/// top-level and a profile's `store`.
const SHOWN_OUTSIDE_ENTRIES: &[&str] = &["store"];

/// The entry key named `name`, if there is one.
pub(crate) fn entry_key(name: &str) -> Option<&'static EntryKey> {
    ENTRY_KEYS.iter().find(|key| key.name == name)
}

/// Whether a snippet may show the string value of a key named `name`.
pub(crate) fn is_shown(name: &str) -> bool {
    entry_key(name).is_some_and(|key| key.shown) || SHOWN_OUTSIDE_ENTRIES.contains(&name)
}

/// "service, username, ...": the entry keys, for the unknown-key message.
pub(crate) fn entry_key_list() -> String {
    ENTRY_KEYS
        .iter()
        .map(|key| key.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Keys that people use when they put a secret's value where its reference belongs.
/// An entry with one of these is refused with advice, not just "unknown key".
pub(crate) const VALUE_KEYS: &[&str] = &[
    "value", "values", "val", "password", "passwd", "pass", "pwd", "secret", "token", "key",
    "api_key", "apikey", "default", "data", "content", "env",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_masker_shows_what_it_showed_before_the_table() {
        // The list diagnostic.rs had of its own.
        for name in ["service", "username", "description", "store"] {
            assert!(is_shown(name), "{name}");
        }
        for name in [
            "optional", "generate", "charset", "mount", "prefix", "token", "x",
        ] {
            assert!(!is_shown(name), "{name}");
        }
    }

    #[test]
    fn each_key_is_described_as_the_readme_describes_it() {
        let readme = include_str!("../../README.md");
        for key in ENTRY_KEYS {
            let row = format!("| `{}` | entry | {} |", key.name, key.description);
            assert!(readme.contains(&row), "README has no row {row}");
        }
    }

    #[test]
    fn no_value_key_is_an_entry_key_and_no_key_is_listed_twice() {
        for key in ENTRY_KEYS {
            assert!(!VALUE_KEYS.contains(&key.name), "{}", key.name);
            assert_eq!(
                ENTRY_KEYS.iter().filter(|k| k.name == key.name).count(),
                1,
                "{}",
                key.name
            );
            assert!(!key.description.is_empty(), "{}", key.name);
        }
    }
}
