//! The `[vault]` table, and the check of services made once the store is
//! known to be vault.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::{expect_table, string};
use crate::manifest::Error;
use crate::manifest::diagnostic::located;
use crate::manifest::{Entry, Manifest, VaultSettings};
use crate::term::printable::printable;

/// The `[vault]` table: where the vault store looks.
pub(super) fn settings(
    value: &Spanned<DeValue<'_>>,
    fail: &impl Fn(Range<usize>, String) -> Error,
) -> Result<VaultSettings, Error> {
    let mut vault = VaultSettings::default();
    let table = expect_table(value, "`[vault]`", fail)?;
    for (key, value) in table {
        let name = key.get_ref().as_ref();
        let path = match name {
            "mount" => &mut vault.mount,
            "prefix" => &mut vault.prefix,
            other => {
                return Err(fail(
                    key.span(),
                    format!("unknown key `{other}` in [vault]; expected `mount` or `prefix`"),
                ));
            }
        };
        *path = vault_path(value, name, fail)?;
        if name == "mount" && path.is_empty() {
            return Err(fail(value.span(), "`mount` must not be empty".into()));
        }
    }
    Ok(vault)
}

/// A mount or prefix: a path of segments, with any slashes around it
/// dropped; no empty, `.` or `..` segment, which the server would read as
/// another path.
fn vault_path(
    value: &Spanned<DeValue<'_>>,
    key: &str,
    fail: &impl Fn(Range<usize>, String) -> Error,
) -> Result<String, Error> {
    let text = string(value, key, fail)?;
    let trimmed = text.trim_matches('/');
    let bad = trimmed.split('/').any(|segment| {
        matches!(segment, "." | "..") || (segment.is_empty() && !trimmed.is_empty())
    }) || trimmed
        .chars()
        .any(|c| c.is_control() || c == '?' || c == '#');
    if bad {
        return Err(fail(
            value.span(),
            format!(
                "`{key}` must be a path such as `team/apps`: no empty, `.` or `..` parts, \
                 and no `?`, `#` or control characters"
            ),
        ));
    }
    Ok(trimmed.to_owned())
}

/// Whether `path` is a path the vault store can use as it is: segments
/// joined by single slashes, none empty, `.` or `..`. The server would read
/// `a//b`, `./x`, `x/` or `/x` as another path, or none.
fn is_clean_path(path: &str) -> bool {
    path.split('/')
        .all(|segment| !matches!(segment, "" | "." | ".."))
}

impl Manifest {
    /// For a run on the vault store, where a service is part of a secret's
    /// path: every entry's service must be a clean path. The manifest stays
    /// store-neutral (a keyring takes any service), so this is checked once
    /// the store is known; a service that is not is a located error, at the
    /// `service` that gave it (the entry's own, or a `[defaults]`').
    pub(crate) fn check_vault_services(&self) -> Result<(), Error> {
        let Some(entry) = self
            .entries
            .iter()
            .find(|entry| !is_clean_path(&entry.service))
        else {
            return Ok(());
        };
        let message = format!(
            "`service` must be a path such as `team/api` for the vault store (its secret is \
             {}/{}{}): no empty, `.` or `..` parts, and no `/` at either end",
            self.vault.mount,
            if self.vault.prefix.is_empty() {
                String::new()
            } else {
                format!("{}/", self.vault.prefix)
            },
            entry.service
        );
        let message = printable(&message).into_owned();
        // Parsed again, as it was read, to point at the `service`: only on
        // this error.
        let body = &*self.text;
        let span = DeTable::parse(body)
            .ok()
            .and_then(|doc| service_span(doc.get_ref(), entry))
            .unwrap_or_else(|| {
                // The entry's line, where no `service` string is found.
                let start = body
                    .split_inclusive('\n')
                    .take(entry.line.saturating_sub(1))
                    .map(str::len)
                    .sum::<usize>();
                start..start
            });
        Err(located(&self.path, body, span, message))
    }
}

/// Where the `service` string of `entry` is in the manifest `doc`: in its
/// own table ([secrets] or a profile's), or the `[defaults]` that gave it.
fn service_span(doc: &DeTable<'_>, entry: &Entry) -> Option<Range<usize>> {
    fn table<'a, 'i>(value: &'a Spanned<DeValue<'i>>) -> Option<&'a DeTable<'i>> {
        match value.get_ref() {
            DeValue::Table(table) => Some(table),
            _ => None,
        }
    }
    let service_in = |value: &Spanned<DeValue<'_>>| {
        let service = table(value)?.get("service")?;
        (service.get_ref().as_str() == Some(entry.service.as_str())).then(|| service.span())
    };
    // Every table that may hold the entry, or a default service.
    let mut secrets = Vec::new();
    let mut defaults = Vec::new();
    secrets.extend(doc.get("secrets").and_then(table));
    defaults.extend(doc.get("defaults"));
    for (_, profile) in doc.get("profiles").and_then(table).into_iter().flatten() {
        let Some(profile) = table(profile) else {
            continue;
        };
        secrets.extend(profile.get("secrets").and_then(table));
        defaults.extend(profile.get("defaults"));
    }
    if entry.service_from_defaults {
        defaults.into_iter().find_map(service_in)
    } else {
        secrets
            .into_iter()
            .find_map(|table| service_in(table.get(entry.name.as_str())?))
    }
}

#[cfg(test)]
mod tests {
    use crate::manifest::parse::test_support::{error, parse};

    #[test]
    fn the_vault_table_is_checked_like_the_rest() {
        let manifest = parse("[vault]\nmount = \"/kv/\"\nprefix = \"team/apps/\"\n").unwrap();
        assert_eq!(
            manifest.vault,
            crate::manifest::VaultSettings {
                mount: "kv".into(),
                prefix: "team/apps".into()
            }
        );
        assert_eq!(parse("").unwrap().vault.mount, "secret");
        for (text, expected) in [
            ("[vault]\nmount = \"\"\n", "2:9: `mount` must not be empty"),
            (
                "[vault]\nprefix = \"a/../b\"\n",
                "2:10: `prefix` must be a path",
            ),
            (
                "[vault]\nprefix = \"a//b\"\n",
                "2:10: `prefix` must be a path",
            ),
            (
                "[vault]\nprefix = 3\n",
                "2:10: `prefix` must be a string, not an integer",
            ),
            (
                "[vault]\nmuont = \"kv\"\n",
                "2:1: unknown key `muont` in [vault]",
            ),
            ("vault = 1\n", "1:9: `[vault]` must be a table"),
        ] {
            let message = error(text);
            assert!(
                message.starts_with(&format!("secrets.toml:{expected}")),
                "{message}"
            );
        }
    }
}
