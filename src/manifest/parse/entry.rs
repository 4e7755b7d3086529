//! One `[secrets]` entry (in the manifest's table or a profile's): its
//! name, and each of its keys, which [`keys::ENTRY_KEYS`] lists.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::{article, describe, non_empty_string, string};
use crate::manifest::Error;
use crate::manifest::keys::{self, VALUE_KEYS};
use crate::manifest::{Charset, Entry, EnvName, Generate};

/// The entries of a `[secrets]` table, in the order of the file.
pub(super) fn parse_entries(
    secrets: Option<&DeTable<'_>>,
    default_service: Option<&str>,
    line_of: &impl Fn(usize) -> usize,
    fail: &impl Fn(Range<usize>, String) -> Error,
) -> Result<Vec<Entry>, Error> {
    let mut entries = Vec::new();
    for (key, value) in secrets.into_iter().flatten() {
        entries.push(parse_entry(key, value, default_service, line_of, fail)?);
    }
    // The table is a sorted map; report and resolve in the order of the file.
    entries.sort_by_key(|entry| entry.line);
    Ok(entries)
}

fn parse_entry(
    key: &Spanned<std::borrow::Cow<'_, str>>,
    value: &Spanned<DeValue<'_>>,
    default_service: Option<&str>,
    line_of: &impl Fn(usize) -> usize,
    fail: &impl Fn(Range<usize>, String) -> Error,
) -> Result<Entry, Error> {
    let raw_name = key.get_ref().as_ref();
    let name = EnvName::new(raw_name).ok_or_else(|| {
        fail(
            key.span(),
            format!(
                "`{raw_name}` is not a valid environment variable name: use ASCII letters, \
                 digits and `_`, and do not start with a digit"
            ),
        )
    })?;
    let table = match value.get_ref() {
        DeValue::Table(table) => table,
        DeValue::String(_) => {
            return Err(fail(value.span(), value_in_entry(&name, None)));
        }
        other => {
            return Err(fail(
                value.span(),
                format!(
                    "`{name}` must be a table such as {{ service = \"...\", username = \"...\" }}, \
                     not {} {}",
                    article(other.type_str()),
                    other.type_str()
                ),
            ));
        }
    };

    let mut service = None;
    let mut username = None;
    let mut optional = false;
    let mut description = None;
    let mut generate = None;
    for (field, field_value) in table {
        let field_name = field.get_ref().as_ref();
        let refused = || {
            let message = if VALUE_KEYS.contains(&field_name) {
                value_in_entry(&name, Some(field_name))
            } else {
                format!(
                    "unknown key `{field_name}` in `{name}`; expected one of {}",
                    keys::entry_key_list()
                )
            };
            fail(field.span(), message)
        };
        // Only a key of the table is parsed, so that the message above and
        // the snippet masker know every key there is.
        let Some(known) = keys::entry_key(field_name) else {
            return Err(refused());
        };
        match known.name {
            "service" => service = Some(non_empty_string(field_value, "service", fail)?),
            "username" => username = Some(non_empty_string(field_value, "username", fail)?),
            "description" => description = Some(string(field_value, "description", fail)?),
            "generate" => generate = generate_rule(field_value, fail)?,
            "optional" => {
                optional = field_value.get_ref().as_bool().ok_or_else(|| {
                    fail(
                        field_value.span(),
                        format!(
                            "`optional` must be true or false, not {}",
                            describe(field_value)
                        ),
                    )
                })?
            }
            // A row of the table with no arm here: the unit test
            // `every_key_of_the_table_is_parsed_and_no_other` fails.
            _ => return Err(refused()),
        }
    }
    let username = username.ok_or_else(|| {
        fail(
            key.span(),
            format!("`{name}` has no `username`; add username = \"...\""),
        )
    })?;
    if let (Some(_), true) = (generate, optional) {
        return Err(fail(
            key.span(),
            format!(
                "`{name}` is both `optional` and `generate`d, but a generated value is never \
                 missing; remove one of the two"
            ),
        ));
    }
    let service_from_defaults = service.is_none();
    let service = match (service, default_service) {
        (Some(service), _) => service,
        (None, Some(default)) => default.to_owned(),
        (None, None) => {
            return Err(fail(
                key.span(),
                format!(
                    "`{name}` has no `service`, and there is no [defaults] service; \
                     add service = \"...\" to the entry"
                ),
            ));
        }
    };
    Ok(Entry {
        name,
        service,
        username,
        optional,
        description,
        generate,
        service_from_defaults,
        line: line_of(key.span().start),
    })
}

/// `generate = true`, `false`, or `{ length = N, charset = "..." }`.
fn generate_rule(
    value: &Spanned<DeValue<'_>>,
    fail: &impl Fn(Range<usize>, String) -> Error,
) -> Result<Option<Generate>, Error> {
    let table = match value.get_ref() {
        DeValue::Boolean(true) => return Ok(Some(Generate::DEFAULT)),
        DeValue::Boolean(false) => return Ok(None),
        DeValue::Table(table) => table,
        _ => {
            return Err(fail(
                value.span(),
                format!(
                    "`generate` must be true, false or a table such as {{ length = 32, \
                     charset = \"alphanumeric\" }}, not {}",
                    describe(value)
                ),
            ));
        }
    };
    let mut rule = Generate::DEFAULT;
    for (key, value) in table {
        match key.get_ref().as_ref() {
            "length" => {
                let length = value
                    .get_ref()
                    .as_integer()
                    .and_then(|n| usize::from_str_radix(n.as_str(), n.radix()).ok())
                    .filter(|n| Generate::LENGTHS.contains(n));
                rule.length = length.ok_or_else(|| {
                    fail(
                        value.span(),
                        format!(
                            "`length` must be a whole number from {} to {}",
                            Generate::LENGTHS.start(),
                            Generate::LENGTHS.end()
                        ),
                    )
                })?;
            }
            "charset" => {
                let text = string(value, "charset", fail)?;
                rule.charset = Charset::ALL
                    .into_iter()
                    .find(|charset| charset.spelling() == text)
                    .ok_or_else(|| {
                        fail(
                            value.span(),
                            format!(
                                "unknown charset `{text}`; expected {}",
                                Charset::ALL.map(Charset::spelling).join(", ")
                            ),
                        )
                    })?;
            }
            other => {
                return Err(fail(
                    key.span(),
                    format!("unknown key `{other}` in `generate`; expected `length` or `charset`"),
                ));
            }
        }
    }
    Ok(Some(rule))
}

fn value_in_entry(name: &EnvName, key: Option<&str>) -> String {
    let what = key.map_or_else(
        || "a value".to_owned(),
        |key| format!("a value (`{key} = ...`)"),
    );
    format!(
        "`{name}` holds {what}, but secrets belong in the keyring, not in a checked-in \
         manifest; write {name} = {{ service = \"...\", username = \"...\" }}, then store \
         the value with: with-secrets set {name}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::parse::test_support::{error, parse};

    /// An entry with `extra` as its last key.
    fn entry_with(extra: &str) -> String {
        format!("[secrets]\nA = {{ service = \"s\", username = \"u\", {extra} }}\n")
    }

    #[test]
    fn every_key_of_the_table_is_parsed_and_no_other() {
        for key in keys::ENTRY_KEYS {
            let mut fields = vec![("service", "\"s\""), ("username", "\"u\"")];
            fields.retain(|(name, _)| *name != key.name);
            fields.push((key.name, key.expects.example()));
            let fields: Vec<String> = fields.iter().map(|(k, v)| format!("{k} = {v}")).collect();
            let text = format!("[secrets]\nA = {{ {} }}\n", fields.join(", "));
            let manifest = parse(&text).unwrap_or_else(|err| panic!("{}: {err}", key.name));
            assert_eq!(manifest.entries.len(), 1, "{}", key.name);
        }
        // A key the table lacks is refused, and the message lists the table.
        let message = error(&entry_with("expires = \"2030\""));
        assert!(
            message.starts_with(&format!(
                "secrets.toml:2:38: unknown key `expires` in `A`; expected one of {}",
                keys::entry_key_list()
            )),
            "{message}"
        );
        assert_eq!(
            keys::entry_key_list(),
            "service, username, optional, description, generate"
        );
    }

    #[test]
    fn generate_is_true_false_or_a_rule() {
        let manifest = parse(
            "[secrets]\nA = { service = \"s\", username = \"a\", generate = true }\n\
             B = { service = \"s\", username = \"b\", generate = false }\n\
             C = { service = \"s\", username = \"c\", generate = { length = 24, charset = \"hex\" } }\n\
             D = { service = \"s\", username = \"d\", generate = { charset = \"base64url\" } }\n\
             E = { service = \"s\", username = \"e\", generate = { length = 0x10 } }\n",
        )
        .unwrap();
        let rules: Vec<Option<Generate>> = manifest.entries.iter().map(|e| e.generate).collect();
        let rule = |length, charset| Some(Generate { length, charset });
        assert_eq!(
            rules,
            [
                rule(32, Charset::Alphanumeric),
                None,
                rule(24, Charset::Hex),
                rule(32, Charset::Base64Url),
                rule(16, Charset::Alphanumeric),
            ]
        );
        for (rule, expected) in [
            ("\"yes\"", "2:49: `generate` must be true, false or a table"),
            (
                "{ length = 15 }",
                "2:60: `length` must be a whole number from 16 to 4096",
            ),
            (
                "{ length = 4097 }",
                "2:60: `length` must be a whole number from 16 to 4096",
            ),
            ("{ length = -1 }", "2:60: `length` must be a whole number"),
            ("{ length = 3.5 }", "2:60: `length` must be a whole number"),
            (
                "{ charset = \"base64\" }",
                "2:61: unknown charset `base64`; expected alphanumeric, hex, base64url",
            ),
            (
                "{ lenght = 20 }",
                "2:51: unknown key `lenght` in `generate`",
            ),
        ] {
            let message = error(&format!(
                "[secrets]\nA = {{ service = \"s\", username = \"a\", generate = {rule} }}\n"
            ));
            assert!(
                message.starts_with(&format!("secrets.toml:{expected}")),
                "{rule}: {message}"
            );
        }
        let message = error(
            "[secrets]\nA = { service = \"s\", username = \"a\", optional = true, generate = true }\n",
        );
        assert!(
            message.starts_with("secrets.toml:2:1: `A` is both `optional` and `generate`d"),
            "{message}"
        );
    }

    #[test]
    fn a_value_in_an_entry_is_refused_without_repeating_it() {
        let message =
            error("[secrets]\nA = { service = \"s\", username = \"u\", password = \"hunter2\" }\n");
        assert!(
            message.contains("secrets belong in the keyring"),
            "{message}"
        );
        assert!(message.contains("with-secrets set A"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[test]
    fn a_bare_string_entry_is_refused_without_repeating_it() {
        let message = error("[secrets]\nAPI_TOKEN = \"sk-live-123\" # my token sk-live-123\n");
        assert!(
            message.starts_with("secrets.toml:2:13: `API_TOKEN` holds a value"),
            "{message}"
        );
        assert!(!message.contains("sk-live"), "{message}");
    }

    #[test]
    fn invalid_names_are_refused() {
        for name in ["1ABC", "A-B", "\"A B\"", "\"\"", "\"É\""] {
            let message = error(&format!(
                "[secrets]\n{name} = {{ service = \"s\", username = \"u\" }}\n"
            ));
            assert!(
                message.contains("is not a valid environment variable name"),
                "{message}"
            );
        }
    }

    #[test]
    fn empty_service_or_username_is_refused() {
        let message = error("[secrets]\nA = { service = \"\", username = \"u\" }\n");
        assert!(
            message.contains("2:17: `service` must not be empty"),
            "{message}"
        );
        let message = error("[secrets]\nA = { service = \"s\", username = \"\" }\n");
        assert!(
            message.contains("`username` must not be empty"),
            "{message}"
        );
        let message = error("[defaults]\nservice = \"\"\n");
        assert!(message.contains("`service` must not be empty"), "{message}");
    }

    #[test]
    fn a_missing_service_without_a_default_is_refused() {
        let message = error("[secrets]\nA = { username = \"u\" }\n");
        assert!(message.contains("`A` has no `service`"), "{message}");
        let message = error("[secrets]\nA = { service = \"s\" }\n");
        assert!(message.contains("`A` has no `username`"), "{message}");
    }

    #[test]
    fn wrong_types_name_the_type_not_the_value() {
        let message = error("[secrets]\nA = 3\n");
        assert!(message.contains("`A` must be a table"), "{message}");
        assert!(message.contains("not an integer"), "{message}");
        let message =
            error("[secrets]\nA = { service = \"s\", username = \"u\", optional = \"yes\" }\n");
        assert!(
            message.contains("`optional` must be true or false, not a string"),
            "{message}"
        );
        assert!(!message.contains("yes"), "{message}");
    }

    #[test]
    fn names_follow_the_posix_shape() {
        for name in ["A", "_", "a_b", "ABC123", "_9"] {
            assert!(EnvName::is_valid(name), "{name}");
        }
        for name in ["", "9", "A-B", "A B", "A=B", "Ä"] {
            assert!(!EnvName::is_valid(name), "{name}");
        }
    }
}
