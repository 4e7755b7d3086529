//! `[profiles.NAME]` tables, and `[defaults]` (the manifest's and each
//! profile's).

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::{expect_table, non_empty_string, store_kind, value_at_top};
use crate::manifest::Error;
use crate::manifest::Profile;
use crate::manifest::keys::VALUE_KEYS;
use crate::store::StoreKind;

/// The most profiles a manifest may have. Real ones have a handful; a limit
/// keeps a hostile manifest from making every command check each of
/// thousands of profiles' views of thousands of entries.
pub(super) const MAX_PROFILES: usize = 64;

/// The `[profiles]` table, each profile checked, in the order of the table.
pub(super) fn raw_profiles<'a, 'i>(
    value: &'a Spanned<DeValue<'i>>,
    fail: &impl Fn(Range<usize>, String) -> Error,
) -> Result<Vec<RawProfile<'a, 'i>>, Error> {
    let table = expect_table(value, "`[profiles]`", fail)?;
    let mut raw_profiles = Vec::new();
    for (name, value) in table {
        if raw_profiles.len() == MAX_PROFILES {
            return Err(fail(
                name.span(),
                format!(
                    "more than {MAX_PROFILES} profiles; a manifest is for a handful of \
                     environments"
                ),
            ));
        }
        raw_profiles.push(raw_profile(name, value, fail)?);
    }
    Ok(raw_profiles)
}

/// The profiles, their entries parsed, in the order of the file.
/// `default_service` is the manifest's `[defaults]` service.
pub(super) fn profiles(
    raw_profiles: Vec<RawProfile<'_, '_>>,
    default_service: Option<&str>,
    line_of: &impl Fn(usize) -> usize,
    fail: &impl Fn(Range<usize>, String) -> Error,
) -> Result<Vec<Profile>, Error> {
    let mut profiles = Vec::new();
    for raw in raw_profiles {
        // A profile's entries that name no service take its own
        // [defaults] first, then the manifest's.
        let defaults = raw.default_service.as_deref().or(default_service);
        let entries = super::entry::parse_entries(raw.secrets, defaults, line_of, fail)?;
        profiles.push((
            raw.line,
            Profile {
                name: raw.name,
                store: raw.store,
                default_service: raw.default_service,
                entries,
            },
        ));
    }
    profiles.sort_by_key(|(line, _)| *line);
    Ok(profiles.into_iter().map(|(_, profile)| profile).collect())
}

/// A `[profiles.NAME]` table, checked, with its entries still to parse
/// (they need the manifest's `[defaults]`, which may come later).
pub(super) struct RawProfile<'a, 'i> {
    name: String,
    line: usize,
    store: Option<StoreKind>,
    default_service: Option<String>,
    secrets: Option<&'a DeTable<'i>>,
}

fn raw_profile<'a, 'i>(
    name: &Spanned<std::borrow::Cow<'i, str>>,
    value: &'a Spanned<DeValue<'i>>,
    fail: &impl Fn(Range<usize>, String) -> Error,
) -> Result<RawProfile<'a, 'i>, Error> {
    let text = name.get_ref().as_ref();
    // The name is typed after --profile and repeated in messages' fix
    // lines, so it is a word a shell leaves alone.
    if !crate::manifest::is_profile_name(text) {
        return Err(fail(
            name.span(),
            format!(
                "`{text}` is not a valid profile name: use up to 64 ASCII letters, digits, `-` \
                 and `_`"
            ),
        ));
    }
    let table = expect_table(value, &format!("`[profiles.{text}]`"), fail)?;
    let mut profile = RawProfile {
        name: text.to_owned(),
        // Its position in the file, for listing profiles in order.
        line: name.span().start,
        store: None,
        default_service: None,
        secrets: None,
    };
    for (key, value) in table {
        match key.get_ref().as_ref() {
            "store" => profile.store = Some(store_kind(value, fail)?),
            "defaults" => {
                profile.default_service =
                    defaults(value, &format!("[profiles.{text}.defaults]"), fail)?;
            }
            "secrets" => {
                profile.secrets = Some(expect_table(
                    value,
                    &format!("`[profiles.{text}.secrets]`"),
                    fail,
                )?);
            }
            other if VALUE_KEYS.contains(&other) => {
                return Err(fail(key.span(), value_at_top(other)));
            }
            other => {
                return Err(fail(
                    key.span(),
                    format!(
                        "unknown key `{other}` in [profiles.{text}]; expected `store`, \
                         `[profiles.{text}.defaults]` or `[profiles.{text}.secrets]`"
                    ),
                ));
            }
        }
    }
    Ok(profile)
}

/// A `[defaults]` table (`what` names it in messages): its `service`.
pub(super) fn defaults(
    value: &Spanned<DeValue<'_>>,
    what: &str,
    fail: &impl Fn(Range<usize>, String) -> Error,
) -> Result<Option<String>, Error> {
    let mut service = None;
    for (key, value) in expect_table(value, &format!("`{what}`"), fail)? {
        match key.get_ref().as_ref() {
            "service" => service = Some(non_empty_string(value, "service", fail)?),
            other if VALUE_KEYS.contains(&other) => {
                return Err(fail(key.span(), value_in_defaults(what, other)));
            }
            other => {
                return Err(fail(
                    key.span(),
                    format!("unknown key `{other}` in {what}; expected `service`"),
                ));
            }
        }
    }
    Ok(service)
}

fn value_in_defaults(what: &str, key: &str) -> String {
    format!(
        "{what} holds a value (`{key} = ...`), but secrets belong in the keyring, not \
         in a checked-in manifest; remove it and store each value with: with-secrets set NAME"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::parse::test_support::{error, parse};

    const PROFILES: &str = r#"
[defaults]
service = "acme"

[secrets]
API_TOKEN = { service = "acme-api", username = "dev" }
DB_URL    = { username = "db" }

[profiles.staging.secrets]
API_TOKEN    = { service = "acme-api", username = "staging" }
STAGING_ONLY = { username = "staging-only" }

[profiles.ci]
store = "file"

[profiles.ci.defaults]
service = "acme-ci"

[profiles.ci.secrets]
API_TOKEN = { service = "acme-api", username = "ci-bot" }
CI_ONLY   = { username = "ci-only" }
"#;

    /// Name, service, username and line of each entry.
    type Row = (String, String, String, usize);

    fn selected(name: &str) -> (Vec<Row>, Option<StoreKind>) {
        let (manifest, store) = parse(PROFILES)
            .unwrap()
            .with_profile(name, "--profile")
            .unwrap();
        let entries = manifest
            .entries
            .iter()
            .map(|e| {
                (
                    e.name.to_string(),
                    e.service.clone(),
                    e.username.clone(),
                    e.line,
                )
            })
            .collect();
        (entries, store)
    }

    #[test]
    fn a_profile_replaces_entries_in_place_and_adds_its_own_after() {
        let manifest = parse(PROFILES).unwrap();
        let names: Vec<&str> = manifest.profiles.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["staging", "ci"], "in the order of the file");
        assert_eq!(
            manifest.entries.len(),
            2,
            "[secrets] alone without a profile"
        );
        let (entries, store) = selected("staging");
        let e = |n: &str, s: &str, u: &str, l: usize| (n.into(), s.into(), u.into(), l);
        assert_eq!(
            entries,
            [
                e("API_TOKEN", "acme-api", "staging", 10),
                e("DB_URL", "acme", "db", 7),
                e("STAGING_ONLY", "acme", "staging-only", 11)
            ]
        );
        assert_eq!(store, None);
    }

    #[test]
    fn a_profile_sets_the_store_and_the_default_service() {
        let (entries, store) = selected("ci");
        let e = |n: &str, s: &str, u: &str, l: usize| (n.into(), s.into(), u.into(), l);
        // DB_URL and CI_ONLY name no service, so the profile's [defaults]
        // gives them one.
        assert_eq!(
            entries,
            [
                e("API_TOKEN", "acme-api", "ci-bot", 20),
                e("DB_URL", "acme-ci", "db", 7),
                e("CI_ONLY", "acme-ci", "ci-only", 21)
            ]
        );
        assert_eq!(store, Some(StoreKind::File));
    }

    #[test]
    fn an_unknown_profile_lists_the_ones_there_are() {
        let err = parse(PROFILES)
            .unwrap()
            .with_profile("prod", "--profile")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "no profile `prod` (from --profile) in secrets.toml; it has: staging, ci\n  use one \
             of those, add [profiles.prod.secrets], or run without --profile to use [secrets] \
             alone"
        );
        let err = parse("")
            .unwrap()
            .with_profile("prod", "--profile")
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("no profile `prod` (from --profile): secrets.toml has no profiles"),
            "{err}"
        );
    }

    #[test]
    fn every_rule_holds_inside_profiles() {
        for (text, expected) in [
            ("[profiles.a.secrets]\nA = 3\n", "2:5: `A` must be a table"),
            (
                "[profiles.a.secrets]\nA = { service = \"s\", username = \"u\", nope = 1 }\n",
                "2:38: unknown key `nope` in `A`",
            ),
            (
                "[profiles.a.secrets]\nA = { username = \"u\" }\n",
                "2:1: `A` has no `service`",
            ),
            (
                "[profiles.a.secrets]\n1A = { service = \"s\", username = \"u\" }\n",
                "2:1: `1A` is not a valid environment variable name",
            ),
            (
                "[profiles.a.secrets]\nA = { service = \"s\", username = \"u\", token = \"t\" }\n",
                "2:38: `A` holds a value (`token = ...`)",
            ),
            (
                "[profiles.a]\ntoken = \"t\"\n",
                "2:1: `token = ...` looks like a value",
            ),
            ("token = \"t\"\n", "1:1: `token = ...` looks like a value"),
            (
                "[profiles.a.defaults]\npassword = \"p\"\n",
                "2:1: [profiles.a.defaults] holds a value (`password = ...`)",
            ),
            (
                "[profiles.a.defaults]\nservise = \"s\"\n",
                "2:1: unknown key `servise` in [profiles.a.defaults]",
            ),
            (
                "[profiles.a]\nstorre = \"file\"\n",
                "2:1: unknown key `storre` in [profiles.a]; expected `store`",
            ),
            (
                "[profiles.a]\nstore = \"consul\"\n",
                "2:9: unknown store `consul`",
            ),
            ("profiles = 3\n", "1:12: `[profiles]` must be a table"),
            ("[profiles]\na = 3\n", "2:5: `[profiles.a]` must be a table"),
            (
                "[profiles.a]\nsecrets = []\n",
                "2:11: `[profiles.a.secrets]` must be a table",
            ),
            (
                "[profiles.\"a b\"]\n",
                "1:11: `a b` is not a valid profile name",
            ),
            ("[profiles.\"\"]\n", "1:11: `` is not a valid profile name"),
            (
                "[profiles.a.secrets]\nA = { service = \"s\", username = \"\" }\n",
                "2:33: `username` must not be empty",
            ),
        ] {
            let message = error(text);
            assert!(
                message.starts_with(&format!("secrets.toml:{expected}")),
                "{text:?}: {message}"
            );
        }
    }

    #[test]
    fn a_value_in_a_profile_is_masked_in_the_snippet() {
        let message = error(
            "[profiles.ci.secrets]\nA = { service = \"s\", username = \"u\", password = \"hunter2\" }\n",
        );
        assert!(message.contains("password = \"***\""), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
        let message = error("[profiles.ci]\nAPI_TOKEN = \"sk-live-123\"\n");
        assert!(
            message.starts_with("secrets.toml:2:1: unknown key `API_TOKEN`"),
            "{message}"
        );
        assert!(!message.contains("sk-live"), "{message}");
    }
}
