//! The built-in JSON Schema (schema/secrets.schema.json) against the
//! parser: the same keys in each table, the same types, enums and limits,
//! and the descriptions of README's table of keys. The end-to-end tests
//! (tests/schema.rs) run real validators over real manifests.

use std::collections::BTreeSet;

use serde_json::Value;

use super::profile::MAX_PROFILES;
use super::test_support::parse;
use crate::manifest::keys::{ENTRY_KEYS, Expects, VALUE_KEYS};
use crate::manifest::schema::SCHEMA;
use crate::manifest::{Charset, EnvName, Generate};
use crate::store::StoreKind;

fn schema() -> Value {
    serde_json::from_str(SCHEMA).expect("the schema is JSON")
}

/// The schema object at `pointer` (`/definitions/entry`...).
fn at<'a>(schema: &'a Value, pointer: &str) -> &'a Value {
    schema
        .pointer(pointer)
        .unwrap_or_else(|| panic!("the schema has no {pointer}"))
}

/// The names under `properties` of the object at `pointer`.
fn keys_at(schema: &Value, pointer: &str) -> BTreeSet<String> {
    at(schema, &format!("{pointer}/properties"))
        .as_object()
        .unwrap_or_else(|| panic!("{pointer}/properties is not an object"))
        .keys()
        .cloned()
        .collect()
}

/// Every key name the schema or the parser knows of anywhere, and some it
/// does not: what each table is tried with.
fn candidates(schema: &Value) -> BTreeSet<String> {
    fn walk(value: &Value, out: &mut BTreeSet<String>) {
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    out.insert(key.clone());
                    walk(value, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|item| walk(item, out)),
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    walk(schema, &mut out);
    out.extend(VALUE_KEYS.iter().map(|key| (*key).to_owned()));
    out.extend(["secret", "profile", "default", "x"].map(str::to_owned));
    // Keys a TOML bare key cannot be, as the schema's own keywords may be.
    out.retain(|key| key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    out
}

/// The keys among `candidates` that the parser accepts, each given the
/// value `value_of(key)` in the text `wrap` makes of `key = value`.
fn parser_accepts(
    candidates: &BTreeSet<String>,
    wrap: impl Fn(&str) -> String,
    value_of: impl Fn(&str) -> &'static str,
) -> BTreeSet<String> {
    candidates
        .iter()
        .filter(|key| parse(&wrap(&format!("{key} = {}", value_of(key)))).is_ok())
        .cloned()
        .collect()
}

/// A value the parser takes for `key` wherever it is allowed.
fn good_value(key: &str) -> &'static str {
    match key {
        "store" => "\"file\"",
        "defaults" => "{ service = \"s\" }",
        "secrets" | "profiles" | "vault" => "{}",
        "service" | "username" | "description" | "mount" | "prefix" => "\"x\"",
        "optional" => "true",
        "generate" => "true",
        "length" => "20",
        "charset" => "\"hex\"",
        // Any other key is refused whatever its value; a table never looks
        // like a pasted value.
        _ => "{}",
    }
}

#[test]
fn the_schema_is_draft_04_with_no_later_keyword() {
    let schema = schema();
    assert_eq!(
        schema["$schema"], "http://json-schema.org/draft-04/schema#",
        "Taplo reads draft 4 only"
    );
    fn walk(value: &Value, path: &str) {
        let later = [
            "const",
            "propertyNames",
            "if",
            "then",
            "else",
            "contains",
            "examples",
            "$id",
            "$comment",
            "$defs",
            "dependentRequired",
            "dependentSchemas",
            "unevaluatedProperties",
            "prefixItems",
        ];
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    // The names of `properties` are ours, not keywords.
                    if !path.ends_with("/properties") {
                        assert!(
                            !later.contains(&key.as_str()),
                            "{path}/{key} is not draft 4"
                        );
                    }
                    walk(value, &format!("{path}/{key}"));
                }
            }
            Value::Array(items) => items.iter().for_each(|item| walk(item, path)),
            _ => {}
        }
    }
    walk(&schema, "");
}

#[test]
fn the_entry_keys_are_exactly_entry_keys_with_their_types_and_descriptions() {
    let schema = schema();
    let names: BTreeSet<String> = ENTRY_KEYS.iter().map(|key| key.name.to_owned()).collect();
    assert_eq!(keys_at(&schema, "/definitions/entry"), names);
    for key in ENTRY_KEYS {
        let property = at(
            &schema,
            &format!("/definitions/entry/properties/{}", key.name),
        );
        // keys.rs's descriptions are README's (a test there checks them).
        assert_eq!(property["description"], key.description, "{}", key.name);
        let (types, min_length) = match key.expects {
            Expects::Name => (serde_json::json!("string"), Some(1)),
            Expects::Text => (serde_json::json!("string"), None),
            Expects::Boolean => (serde_json::json!("boolean"), None),
            Expects::Generate => (serde_json::json!(["boolean", "object"]), None),
        };
        assert_eq!(property["type"], types, "{}", key.name);
        assert_eq!(
            property.get("minLength").and_then(Value::as_u64),
            min_length,
            "{}",
            key.name
        );
    }
    assert_eq!(
        at(&schema, "/definitions/entry/required"),
        &serde_json::json!(["username"])
    );
    // Every table refuses what it does not list.
    for pointer in [
        "",
        "/properties/vault",
        "/properties/profiles",
        "/definitions/defaults",
        "/definitions/secrets",
        "/definitions/entry",
        "/definitions/entry/properties/generate",
        "/definitions/profile",
    ] {
        assert_eq!(
            at(&schema, pointer)["additionalProperties"],
            false,
            "{pointer}"
        );
    }
}

/// Makes a manifest of one `key = value` line, in the table under test.
type Wrap = Box<dyn Fn(&str) -> String>;

#[test]
fn each_table_has_exactly_the_keys_the_parser_accepts_there() {
    let schema = schema();
    let candidates = candidates(&schema);
    let entry =
        |line: &str| format!("[secrets]\nA = {{ service = \"s\", username = \"u\", {line} }}\n");
    let cases: [(&str, Wrap); 7] = [
        ("", Box::new(|line: &str| format!("{line}\n"))),
        (
            "/definitions/defaults",
            Box::new(|line: &str| format!("[defaults]\n{line}\n")),
        ),
        (
            "/definitions/profile",
            Box::new(|line: &str| format!("[profiles.p]\n{line}\n")),
        ),
        (
            "/properties/vault",
            Box::new(|line: &str| format!("[vault]\n{line}\n")),
        ),
        (
            // `service` and `username` are given already: each key once.
            "/definitions/entry",
            Box::new(move |line: &str| match line.split(' ').next() {
                Some("service") => format!("[secrets]\nA = {{ username = \"u\", {line} }}\n"),
                Some("username") => format!("[secrets]\nA = {{ service = \"s\", {line} }}\n"),
                _ => entry(line),
            }),
        ),
        (
            "/definitions/entry/properties/generate",
            Box::new(|line: &str| {
                format!(
                    "[secrets]\nA = {{ service = \"s\", username = \"u\", generate = {{ {line} }} }}\n"
                )
            }),
        ),
        (
            "/definitions/profile/properties/defaults",
            Box::new(|line: &str| format!("[profiles.p.defaults]\n{line}\n")),
        ),
    ];
    for (pointer, wrap) in cases {
        // A `$ref` is followed: the profile's defaults are [defaults]'.
        let pointer = match at(&schema, pointer).get("$ref").and_then(Value::as_str) {
            Some(target) => target.trim_start_matches('#').to_owned(),
            None => pointer.to_owned(),
        };
        assert_eq!(
            parser_accepts(&candidates, wrap, good_value),
            keys_at(&schema, &pointer),
            "the keys of {pointer:?}"
        );
    }
}

/// README's meaning of the key `key` where `place` (its manifest table).
fn readme_meaning(key: &str, place: &str) -> String {
    let readme = include_str!("../../../README.md");
    let start = format!("| `{key}` | {place} | ");
    let line = readme
        .lines()
        .find_map(|line| line.strip_prefix(&start))
        .unwrap_or_else(|| panic!("README has no row {start}"));
    line.strip_suffix(" |").expect("a table row").to_owned()
}

#[test]
fn the_descriptions_are_readme_s() {
    let schema = schema();
    for (key, place, pointer) in [
        ("store", "top level", "/properties/store"),
        (
            "service",
            "`[defaults]`",
            "/definitions/defaults/properties/service",
        ),
        ("[profiles.NAME]", "top level", "/properties/profiles"),
        ("[vault]", "top level", "/properties/vault"),
    ] {
        assert_eq!(
            at(&schema, pointer)["description"],
            readme_meaning(key, place),
            "{pointer}"
        );
    }
    for key in ENTRY_KEYS {
        assert_eq!(
            at(
                &schema,
                &format!("/definitions/entry/properties/{}", key.name)
            )["description"],
            readme_meaning(key.name, "entry"),
        );
    }
}

#[test]
fn the_enums_and_limits_are_the_parser_s() {
    let schema = schema();
    let mut stores: Vec<&str> = StoreKind::ALL.iter().map(|kind| kind.spelling()).collect();
    stores.push("openbao");
    for pointer in ["/properties/store", "/definitions/profile/properties/store"] {
        assert_eq!(
            at(&schema, pointer)["enum"],
            serde_json::json!(stores),
            "{pointer}"
        );
        for store in at(&schema, pointer)["enum"].as_array().unwrap() {
            assert!(StoreKind::from_spelling(store.as_str().unwrap()).is_some());
        }
    }
    let charsets: Vec<&str> = Charset::ALL.iter().map(|c| c.spelling()).collect();
    let generate = at(&schema, "/definitions/entry/properties/generate/properties");
    assert_eq!(generate["charset"]["enum"], serde_json::json!(charsets));
    assert_eq!(generate["length"]["type"], "integer");
    assert_eq!(generate["length"]["minimum"], *Generate::LENGTHS.start());
    assert_eq!(generate["length"]["maximum"], *Generate::LENGTHS.end());
    assert_eq!(
        at(&schema, "/properties/profiles")["maxProperties"],
        MAX_PROFILES
    );
    // And the parser's limits are where the schema says.
    let rule = |length: usize| {
        parse(&format!(
            "[secrets]\nA = {{ service = \"s\", username = \"u\", generate = {{ length = {length} }} }}\n"
        ))
        .is_ok()
    };
    assert!(rule(16) && rule(4096) && !rule(15) && !rule(4097));
    let profiles = |count: usize| {
        parse(
            &(0..count)
                .map(|i| format!("[profiles.p{i}]\n"))
                .collect::<String>(),
        )
        .is_ok()
    };
    assert!(profiles(MAX_PROFILES) && !profiles(MAX_PROFILES + 1));
}

/// The one pattern under `patternProperties` at `pointer`, as Rust's regex
/// (Taplo's engine) reads it.
fn pattern_at(schema: &Value, pointer: &str) -> regex::Regex {
    let patterns = at(schema, &format!("{pointer}/patternProperties"))
        .as_object()
        .unwrap();
    assert_eq!(patterns.len(), 1, "{pointer}");
    regex::Regex::new(patterns.keys().next().unwrap()).unwrap()
}

proptest::proptest! {
    #[test]
    fn the_name_patterns_are_the_parser_s(
        name in proptest::prop_oneof![
            // Mostly near-misses: names of the right characters, of about
            // the longest length, with at most one wrong character.
            "[A-Za-z0-9_]{0,3}",
            "[A-Za-z0-9_-]{0,70}",
            "[A-Za-z0-9_-]{0,40}[-= .$\n\u{0}\u{e9}\u{212a}]?[A-Za-z0-9_-]{0,30}",
            proptest::arbitrary::any::<String>(),
        ]
    ) {
        let schema = schema();
        proptest::prop_assert_eq!(
            pattern_at(&schema, "/definitions/secrets").is_match(&name),
            EnvName::is_valid(&name)
        );
        proptest::prop_assert_eq!(
            pattern_at(&schema, "/properties/profiles").is_match(&name),
            crate::manifest::is_profile_name(&name)
        );
    }

    #[test]
    fn the_vault_path_patterns_are_the_parser_s(
        path in "[a/.?#\u{0}\u{7f}\u{85}\u{9f}\u{a0}é]{0,8}"
    ) {
        let schema = schema();
        for key in ["mount", "prefix"] {
            let pattern = at(&schema, &format!("/properties/vault/properties/{key}/pattern"));
            let pattern = regex::Regex::new(pattern.as_str().unwrap()).unwrap();
            let text = format!("[vault]\n{key} = {}\n", serde_json::to_string(&path).unwrap());
            proptest::prop_assert_eq!(
                pattern.is_match(&path),
                parse(&text).is_ok(),
                "{} = {:?}", key, path
            );
        }
    }
}
