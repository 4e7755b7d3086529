//! Reading a manifest's text: TOML, then every rule of the format, each
//! broken rule a located error. This file reads the top level and holds
//! the helpers every table uses; each table has its own file: [`entry`]
//! for a `[secrets]` entry, [`profile`] for `[profiles.NAME]` and
//! `[defaults]`, [`vault`] for `[vault]`, and [`rules`] checks the
//! `generate` rules of the whole manifest.

mod entry;
mod profile;
mod rules;
#[cfg(test)]
mod schema_tests;
mod vault;

use std::ops::Range;
use std::path::Path;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::diagnostic::{located, too_big};
use super::keys::VALUE_KEYS;
use super::{Entry, EnvName, MAX_BYTES, Manifest};
use crate::manifest::Error;
use crate::store::StoreKind;
use crate::term::printable::printable;

impl Manifest {
    /// Checks manifest `text`; `path` is only used in messages.
    pub fn parse(path: &Path, text: &str) -> Result<Self, Error> {
        Self::parse_checking(path, text, true)
    }

    /// `parse`, with or without the check of `generate` rules (the unit
    /// tests compare it with a plain one).
    fn parse_checking(path: &Path, text: &str, rules: bool) -> Result<Self, Error> {
        if text.len() > MAX_BYTES {
            return Err(too_big(path, text));
        }
        // A byte-order mark is harmless; editors on Windows write one.
        let body = text.strip_prefix('\u{feff}').unwrap_or(text);
        // Errors are located in the text after the mark, which is what an
        // editor shows: the mark is invisible and would shift the column.
        let fail = |span: Range<usize>, message: String| {
            located(path, body, span, printable(&message).into_owned())
        };
        let doc = DeTable::parse(body).map_err(|err| {
            let span = err.span().unwrap_or(0..0);
            let message = err.message().trim_end();
            let message =
                pasted_value(body, span.start, message).unwrap_or_else(|| message.to_owned());
            fail(span, message)
        })?;

        let mut default_service = None;
        let mut secrets = None;
        let mut store = None;
        let mut vault = super::VaultSettings::default();
        let mut raw_profiles = Vec::new();
        for (key, value) in doc.get_ref() {
            match key.get_ref().as_ref() {
                "defaults" => default_service = profile::defaults(value, "[defaults]", &fail)?,
                "secrets" => secrets = Some(expect_table(value, "`[secrets]`", &fail)?),
                "vault" => vault = vault::settings(value, &fail)?,
                "store" => store = Some(store_kind(value, &fail)?),
                "profiles" => raw_profiles = profile::raw_profiles(value, &fail)?,
                // A table is never a pasted value: `[secret]` is a typo.
                other if VALUE_KEYS.contains(&other) && value.get_ref().as_table().is_none() => {
                    return Err(fail(key.span(), value_at_top(other)));
                }
                other => {
                    // `[name]`, not `name = { ... }` (an entry above its table).
                    let header = body[..key.span().start]
                        .trim_end_matches([' ', '\t', '"', '\''])
                        .ends_with('[');
                    return Err(fail(key.span(), unknown_at_top(other, header)));
                }
            }
        }

        // Where each line starts, so that finding an entry's line is a
        // search, not a count from the top (which made a long manifest slow).
        let newlines: Vec<usize> = body.match_indices('\n').map(|(i, _)| i).collect();
        let line_of = |offset: usize| newlines.partition_point(|&i| i < offset) + 1;
        let entries = entry::parse_entries(secrets, default_service.as_deref(), &line_of, &fail)?;
        let profiles =
            profile::profiles(raw_profiles, default_service.as_deref(), &line_of, &fail)?;
        let manifest = Self {
            path: path.to_owned(),
            text: body.into(),
            store,
            entries,
            vault,
            profiles,
        };
        // One item made two ways would be made by whichever came first: in
        // [secrets], and in each profile's view of it (built here without
        // copying, so that many profiles cost little).
        let line_start = |line: usize| if line == 1 { 0 } else { newlines[line - 2] + 1 };
        let conflict = |entry: &Entry, other: &Entry, service: &str, profile: Option<&str>| {
            let start = line_start(entry.line);
            let under =
                profile.map_or_else(String::new, |name| format!(" under [profiles.{name}]"));
            fail(
                start..start + entry.name.as_str().len(),
                format!(
                    "`{}` and `{}` are one keyring item ({} / {}){under}, with different \
                     `generate` rules; give both the same rule, or keep it on one",
                    entry.name,
                    other.name,
                    printable(service),
                    printable(&entry.username)
                ),
            )
        };
        if rules {
            rules::check_generate_rules(&manifest, conflict)?;
        }
        Ok(manifest)
    }
}

/// A `store = "..."` (top-level or a profile's).
fn store_kind(
    value: &Spanned<DeValue<'_>>,
    fail: &impl Fn(Range<usize>, String) -> Error,
) -> Result<StoreKind, Error> {
    let name = string(value, "store", fail)?;
    StoreKind::from_spelling(&name).ok_or_else(|| fail(value.span(), unknown_store(&name)))
}

fn unknown_store(name: &str) -> String {
    format!(
        "unknown store `{name}`; expected one of {}",
        StoreKind::spellings()
    )
}

/// For TOML's "string values must be quoted" at `NAME = word`: the word is
/// a value pasted in (a token, a password), which quoting would only turn
/// into the next error. Says so at once, with the `set` line for the table
/// it is in. `None` for any other error.
fn pasted_value(body: &str, at: usize, message: &str) -> Option<String> {
    if !message.starts_with("string values must be quoted") {
        return None;
    }
    let start = body[..at].rfind('\n').map_or(0, |i| i + 1);
    // Only a bare word right after `NAME =`: not a word inside an inline
    // table (`{ service = acme }`), which is a string that lost its quotes.
    let (name, between) = body[start..at].split_once('=')?;
    let end = body[at..].find('\n').map_or(body.len(), |i| at + i);
    if !between.trim().is_empty() || body[start..end].contains('{') {
        return None;
    }
    let name = EnvName::new(name.trim())?;
    // The last table header above the line: `[secrets]`, or a profile's.
    let header = body[..start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|line| line.starts_with('['));
    let profile = header
        .and_then(|line| line.strip_prefix("[profiles."))
        .and_then(|rest| rest.strip_suffix(".secrets]"))
        .filter(|profile| super::is_profile_name(profile));
    let (write, set) = match (header, profile) {
        (_, Some(profile)) => (
            "write",
            format!("with-secrets --profile {profile} set {name}"),
        ),
        (Some("[secrets]"), None) => ("write", format!("with-secrets set {name}")),
        // At the top level, a name that is not one of its keys
        // (`store = file` is a string that lost its quotes).
        (None, None) if name.as_str() != "store" => {
            ("write under [secrets]", format!("with-secrets set {name}"))
        }
        // In another table (`[defaults]`, `[vault]`, a profile's own): one
        // of its keys, unquoted.
        _ => return None,
    };
    Some(format!(
        "`{name} = ...` looks like a value pasted into the manifest, but secrets belong in \
         the keyring, not in a checked-in manifest; {write} {name} = {{ service = \"...\", \
         username = \"...\" }}, then store the value with: {set}"
    ))
}

fn value_at_top(key: &str) -> String {
    format!(
        "`{key} = ...` looks like a value, but secrets belong in the keyring, not in a \
         checked-in manifest; name it in [secrets] as NAME = {{ service = \"...\", username = \
         \"...\" }}, then store the value with: with-secrets set NAME"
    )
}

/// An unknown top-level key or table, with the known one it is a typo of,
/// if one is close (`[secret]`: `[secrets]`).
fn unknown_at_top(key: &str, header: bool) -> String {
    const KNOWN: [(&str, &str); 5] = [
        ("secrets", "[secrets]"),
        ("defaults", "[defaults]"),
        ("profiles", "[profiles.NAME]"),
        ("vault", "[vault]"),
        ("store", "store = \"...\""),
    ];
    let what = if header {
        format!("table [{key}]")
    } else {
        format!("key `{key}`")
    };
    let near = KNOWN
        .iter()
        .map(|&(name, shown)| (strsim::damerau_levenshtein(key, name), shown))
        .filter(|&(distance, _)| distance <= 2)
        .min();
    match near {
        Some((_, shown)) => format!("unknown {what}; did you mean `{shown}`?"),
        None => format!(
            "unknown {what}; expected `store`, `[defaults]`, `[secrets]`, `[profiles.NAME]` \
             or `[vault]`"
        ),
    }
}

fn expect_table<'a, 'i>(
    value: &'a Spanned<DeValue<'i>>,
    what: &str,
    fail: &impl Fn(Range<usize>, String) -> Error,
) -> Result<&'a DeTable<'i>, Error> {
    value.get_ref().as_table().ok_or_else(|| {
        fail(
            value.span(),
            format!("{what} must be a table, not {}", describe(value)),
        )
    })
}

fn string(
    value: &Spanned<DeValue<'_>>,
    key: &str,
    fail: &impl Fn(Range<usize>, String) -> Error,
) -> Result<String, Error> {
    value.get_ref().as_str().map(str::to_owned).ok_or_else(|| {
        fail(
            value.span(),
            format!("`{key}` must be a string, not {}", describe(value)),
        )
    })
}

fn non_empty_string(
    value: &Spanned<DeValue<'_>>,
    key: &str,
    fail: &impl Fn(Range<usize>, String) -> Error,
) -> Result<String, Error> {
    let string = string(value, key, fail)?;
    if string.is_empty() {
        return Err(fail(value.span(), format!("`{key}` must not be empty")));
    }
    Ok(string)
}

/// "an integer", "a table": the type of a value, never the value itself.
fn describe(value: &Spanned<DeValue<'_>>) -> String {
    let kind = value.get_ref().type_str();
    format!("{} {kind}", article(kind))
}

fn article(kind: &str) -> &'static str {
    if kind.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// What the unit tests of every table parse with.
#[cfg(test)]
mod test_support {
    use std::path::Path;

    use crate::manifest::Error;
    use crate::manifest::Manifest;

    pub(super) fn parse(text: &str) -> Result<Manifest, Error> {
        Manifest::parse(Path::new("secrets.toml"), text)
    }

    pub(super) fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::profile::MAX_PROFILES;
    use super::*;
    use crate::manifest::parse::test_support::{error, parse};

    #[test]
    fn the_example_from_the_issue_parses_in_file_order() {
        let manifest = parse(
            r#"
[defaults]
service = "acme"

[secrets]
SENTRY_DSN   = { service = "sentry", username = "acme", optional = true, description = "error reporting" }
API_TOKEN    = { service = "acme-api", username = "ci-bot" }
DATABASE_URL = { username = "dev-db" }
"#,
        )
        .unwrap();
        let names: Vec<_> = manifest.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["SENTRY_DSN", "API_TOKEN", "DATABASE_URL"]);
        let db = manifest.entry("DATABASE_URL").unwrap();
        assert_eq!(
            (db.service.as_str(), db.username.as_str()),
            ("acme", "dev-db")
        );
        assert!(!db.optional);
        let sentry = manifest.entry("SENTRY_DSN").unwrap();
        assert!(sentry.optional);
        assert_eq!(sentry.description.as_deref(), Some("error reporting"));
        assert_eq!(sentry.line, 6);
    }

    #[test]
    fn a_top_level_store_is_read_and_checked() {
        let manifest = parse("store = \"file\"\n[secrets]\n").unwrap();
        assert_eq!(manifest.store, Some(StoreKind::File));
        assert_eq!(parse("").unwrap().store, None);
        assert_eq!(
            parse("store = \"openbao\"\n").unwrap().store,
            Some(StoreKind::Vault)
        );
        let message = error("store = \"consul\"\n");
        assert!(
            message.starts_with(
                "secrets.toml:1:9: unknown store `consul`; expected one of auto, secret-service"
            ),
            "{message}"
        );
    }

    #[test]
    fn an_empty_manifest_has_no_entries() {
        assert!(parse("").unwrap().entries.is_empty());
        assert!(parse("[secrets]\n").unwrap().entries.is_empty());
    }

    #[test]
    fn an_unknown_key_is_located_with_a_snippet() {
        let message =
            error("[secrets]\nA = { service = \"s\", username = \"u\", servce = \"x\" }\n");
        assert!(
            message.starts_with("secrets.toml:2:38: unknown key `servce` in `A`"),
            "{message}"
        );
        assert!(
            message.contains("2 | A = { service = \"s\", username = \"u\", servce = \"***\" }"),
            "{message}"
        );
        assert!(
            message.ends_with("  |                                      ^^^^^^"),
            "{message}"
        );
    }

    #[test]
    fn a_value_pasted_without_quotes_never_appears_in_the_error() {
        for (text, secret) in [
            ("[secrets]\nAPI_TOKEN = ghp_abc123XYZ\n", "abc123"),
            ("[secrets]\nDB=postgres://user:pw@host/db\n", "pw@host"),
            (
                "[secrets]\nDB = postgres://user:pw@host/db\nB = 1\n",
                "pw@host",
            ),
            (
                "[secrets]\nA = { service = \"s\", username = \"u\", password = hunter2 }\n",
                "hunter2",
            ),
            (
                "[secrets]\nA = { service = \"s\", username = hunter2 }\n",
                "hunter2",
            ),
            ("[secrets]\nghp_abc123XYZ\n", "abc123"),
            ("[secrets]\nsk-live-abc123 # pasted\n", "abc123"),
            ("[secrets]\nA = 123456\n", "123456"),
            ("[secrets]\nA = @abc123$x\n", "abc123"),
            ("[secrets]\nA = true123\n", "123"),
            ("[defaults]\nservice = abc123-word\n", "abc123"),
            ("store = abc123\n", "abc123"),
            ("[secrets]\nA: abc123\n", "abc123"),
        ] {
            let message = error(text);
            assert!(message.starts_with("secrets.toml:"), "{message}");
            assert!(!message.contains(secret), "{text:?} gave:\n{message}");
        }
    }

    #[test]
    fn keys_and_booleans_stay_visible_in_a_snippet() {
        let message =
            error("[secrets]\nA = { service = \"s\", username = \"u\", optional = true, x = 1 }\n");
        assert!(
            message
                .contains("2 | A = { service = \"s\", username = \"u\", optional = true, x = ***"),
            "{message}"
        );
    }

    #[test]
    fn a_syntax_error_never_shows_a_string_value() {
        let message = error("[secrets]\nA = { service = \"s\", token = \"hunter2 }\n");
        assert!(message.starts_with("secrets.toml:2:"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[test]
    fn a_byte_order_mark_and_crlf_are_accepted() {
        let manifest =
            parse("\u{feff}[secrets]\r\nA = { service = \"s\", username = \"u\" }\r\n").unwrap();
        assert_eq!(manifest.entries[0].line, 2);
    }

    #[test]
    fn a_duplicate_key_is_located() {
        let message = error(
            "[secrets]\nA = { service = \"s\", username = \"u\" }\nA = { service = \"s\", username = \"v\" }\n",
        );
        assert!(message.starts_with("secrets.toml:3:1:"), "{message}");
    }

    proptest::proptest! {
        #[test]
        fn a_name_is_valid_exactly_when_it_matches_the_readme_regex(
            name in proptest::prop_oneof![
                // Mostly near-misses: ASCII names with a few wrong characters.
                "[A-Za-z0-9_\\-= .$\u{0}\u{e9}\u{212a}]{0,12}",
                proptest::arbitrary::any::<String>(),
            ]
        ) {
            let regex = regex::Regex::new("^[A-Za-z_][A-Za-z0-9_]*$").unwrap();
            proptest::prop_assert_eq!(EnvName::is_valid(&name), regex.is_match(&name));
            proptest::prop_assert_eq!(
                EnvName::new(&name).map(|n| n.as_str().to_owned()),
                regex.is_match(&name).then(|| name.clone())
            );
        }

        #[test]
        fn every_name_the_regex_allows_is_accepted_as_a_manifest_key(
            name in "[A-Za-z_][A-Za-z0-9_]{0,20}"
        ) {
            let manifest = parse(&format!(
                "[secrets]\n{name} = {{ service = \"s\", username = \"u\" }}\n"
            ))
            .unwrap();
            proptest::prop_assert_eq!(manifest.entries[0].name.as_str(), name.as_str());
        }

        #[test]
        fn any_text_gives_a_manifest_or_a_located_error_never_a_panic(text in ".{0,200}") {
            if let Err(err) = parse(&text) {
                let located = matches!(err, Error::Manifest { .. });
                proptest::prop_assert!(located, "{err:?}");
            }
        }
    }

    #[test]
    fn a_manifest_over_one_mib_is_refused_where_it_crosses_the_limit() {
        let line = "# a comment line of sixty-four bytes, repeated well past 1 MiB.\n";
        assert_eq!(line.len(), 64);
        let text = line.repeat(MAX_BYTES / 64 + 10);
        let message = error(&text);
        assert!(
            message.starts_with(&format!(
                "secrets.toml:{}:1: the manifest is larger than 1 MiB",
                MAX_BYTES / 64 + 1
            )),
            "{message}"
        );
        // One byte under the limit is still read.
        let mut text = line.repeat(MAX_BYTES / 64);
        text.truncate(MAX_BYTES - 1);
        assert!(parse(&text).is_ok());
    }

    #[test]
    fn a_long_line_gives_a_short_snippet() {
        // 200,000 strings on one line: a snippet that scanned every string
        // for every character took minutes and printed a megabyte.
        let strings = vec!["\"x\""; 200_000].join(",");
        let message = error(&format!("[secrets]\nA = [{strings}]\n"));
        assert!(
            message.starts_with("secrets.toml:2:5: `A` must be a table"),
            "{message}"
        );
        let snippet = message.lines().nth(2).unwrap();
        assert!(
            snippet.starts_with("2 | A = [\"***\",\"***\","),
            "{snippet}"
        );
        assert!(snippet.ends_with('…'), "{snippet}");
        assert!(message.len() < 2_000, "{} bytes", message.len());
    }

    #[test]
    fn a_snippet_shows_a_window_around_an_error_far_along_a_line() {
        let pad = "x".repeat(5_000);
        let message = error(&format!(
            "[secrets]\nA = {{ service = \"{pad}\", username = \"u\", nope = 1 }}\n"
        ));
        let lines: Vec<&str> = message.lines().collect();
        assert!(
            lines[0].starts_with("secrets.toml:2:5037: unknown key `nope`"),
            "{message}"
        );
        assert!(lines[2].starts_with("2 | …xxx"), "{message}");
        assert!(
            lines[2].ends_with("username = \"u\", nope = ***"),
            "{message}"
        );
        let caret = lines[3].find('^').unwrap();
        let under: String = lines[2].chars().skip(caret).take(4).collect();
        assert_eq!(under, "nope", "{message}");
    }

    #[test]
    fn a_byte_order_mark_does_not_shift_the_column() {
        let message = error("\u{feff}A = 3\n");
        assert!(
            message.starts_with("secrets.toml:1:1: unknown key `A`"),
            "{message}"
        );
        assert!(
            message.contains("\n1 | A = ***\n  | ^\n") || message.ends_with("\n1 | A = ***\n  | ^"),
            "{message}"
        );
    }

    #[test]
    fn control_characters_never_reach_the_terminal() {
        let message = error("[secrets]\n\"\\u001b]0;owned\\u0007\" = { service = \"s\" }\n");
        assert!(
            message.contains("`\\u{1b}]0;owned\\u{7}` is not a valid"),
            "{message}"
        );
        assert!(
            !message.chars().any(|c| c.is_control() && c != '\n'),
            "{message:?}"
        );
        for text in [
            "A = 1 # \x1b[31m\n",
            "B\x07 = 2\n",
            "[secrets]\nA = { service = \"\x1b[2J\" }\n",
        ] {
            let message = error(text);
            assert!(
                !message.chars().any(|c| c.is_control() && c != '\n'),
                "{message:?}"
            );
        }
    }

    #[test]
    fn hostile_manifests_are_located_errors() {
        let deep =
            |open: &str, close: &str| format!("A = {}1{}", open.repeat(5_000), close.repeat(5_000));
        let cases = [
            (
                "[secrets]\nA = { service = \"s\", user".to_owned(),
                "secrets.toml:2:",
            ),
            (
                "[secrets]\r\nA = 3\r\n".to_owned(),
                "secrets.toml:2:5: `A` must be a table",
            ),
            (deep("[", "]"), "secrets.toml:1:"),
            (deep("{a=", "}"), "secrets.toml:1:"),
            (
                format!("{} = 1", vec!["a"; 5_000].join(".")),
                "secrets.toml:1:",
            ),
            (
                format!("[{}]", vec!["a"; 5_000].join(".")),
                "secrets.toml:1:",
            ),
            (
                "[secrets]\nA = { service = \"s\", username = \"u\" }\n[secrets]\n".to_owned(),
                "secrets.toml:3:",
            ),
            ("\0".to_owned(), "secrets.toml:1:"),
            (
                "[secrets]\nA = {}\n".to_owned(),
                "secrets.toml:2:1: `A` has no `username`",
            ),
            (
                "[secrets]\nA = { service = \"s\", username = \"u\", description = 3 }\n"
                    .to_owned(),
                "secrets.toml:2:52: `description` must be a string",
            ),
            (
                "secrets = 3\n".to_owned(),
                "secrets.toml:1:11: `[secrets]` must be a table",
            ),
            (
                "[defaults]\nservice = []\n".to_owned(),
                "secrets.toml:2:11: `service` must be a string",
            ),
            // The same inside profiles.
            (
                format!("[profiles.a.secrets]\n{}", deep("{a=", "}")),
                "secrets.toml:2:",
            ),
            (
                "[profiles.a.secrets]\n[profiles.a.secrets]\n".to_owned(),
                "secrets.toml:2:",
            ),
            (
                "[profiles.a]\n[profiles.a]\n".to_owned(),
                "secrets.toml:2:",
            ),
            (
                format!("[profiles.{}]\n", "a".repeat(65)),
                "secrets.toml:1:11: `aaaa",
            ),
            (
                "[profiles.\"\\u001b[2J\"]\n".to_owned(),
                "secrets.toml:1:11: `\\u{1b}[2J` is not a valid profile name",
            ),
            (
                "[profiles.a.secrets]\nA = { service = \"s\", username = \"u\", generate = { length = 99999999999999999999999 } }\n".to_owned(),
                "secrets.toml:2:",
            ),
            (
                (0..=MAX_PROFILES).map(|i| format!("[profiles.p{i}]\n")).collect(),
                "secrets.toml:10:11: more than 64 profiles",
            ),
        ];
        for (text, expected) in cases {
            let message = error(&text);
            assert!(message.starts_with(expected), "{expected}: {message}");
        }
    }
}
