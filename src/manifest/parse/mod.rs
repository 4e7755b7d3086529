//! Reading a manifest's text: TOML, then every rule of the format, each
//! broken rule a located error.

use std::ops::Range;
use std::path::Path;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::diagnostic::{located, too_big};
use super::{Charset, ENTRY_KEYS, Entry, EnvName, Generate, MAX_BYTES, Manifest, VALUE_KEYS};
use crate::error::Error;
use crate::store::StoreKind;

/// The most profiles a manifest may have. Real ones have a handful; a limit
/// keeps a hostile manifest from making every command check each of
/// thousands of profiles' views of thousands of entries.
const MAX_PROFILES: usize = 64;
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
                "defaults" => default_service = defaults(value, "[defaults]", &fail)?,
                "secrets" => secrets = Some(expect_table(value, "`[secrets]`", &fail)?),
                "vault" => {
                    let table = expect_table(value, "`[vault]`", &fail)?;
                    for (key, value) in table {
                        let name = key.get_ref().as_ref();
                        let path = match name {
                            "mount" => &mut vault.mount,
                            "prefix" => &mut vault.prefix,
                            other => {
                                return Err(fail(
                                    key.span(),
                                    format!(
                                        "unknown key `{other}` in [vault]; expected `mount` or \
                                         `prefix`"
                                    ),
                                ));
                            }
                        };
                        *path = vault_path(value, name, &fail)?;
                        if name == "mount" && path.is_empty() {
                            return Err(fail(value.span(), "`mount` must not be empty".into()));
                        }
                    }
                }
                "store" => store = Some(store_kind(value, &fail)?),
                "profiles" => {
                    let table = expect_table(value, "`[profiles]`", &fail)?;
                    for (name, value) in table {
                        if raw_profiles.len() == MAX_PROFILES {
                            return Err(fail(
                                name.span(),
                                format!(
                                    "more than {MAX_PROFILES} profiles; a manifest is for a \
                                     handful of environments"
                                ),
                            ));
                        }
                        raw_profiles.push(raw_profile(name, value, &fail)?);
                    }
                }
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
        let entries = parse_entries(secrets, default_service.as_deref(), &line_of, &fail)?;
        let mut profiles = Vec::new();
        for raw in raw_profiles {
            // A profile's entries that name no service take its own
            // [defaults] first, then the manifest's.
            let defaults = raw
                .default_service
                .as_deref()
                .or(default_service.as_deref());
            let entries = parse_entries(raw.secrets, defaults, &line_of, &fail)?;
            profiles.push((
                raw.line,
                super::Profile {
                    name: raw.name,
                    store: raw.store,
                    default_service: raw.default_service,
                    entries,
                },
            ));
        }
        profiles.sort_by_key(|(line, _)| *line);
        let manifest = Self {
            path: path.to_owned(),
            text: body.into(),
            store,
            entries,
            vault,
            profiles: profiles.into_iter().map(|(_, profile)| profile).collect(),
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
            check_generate_rules(&manifest, conflict)?;
        }
        Ok(manifest)
    }
}

/// A keyring item: service and username.
type Item<'m> = (&'m str, &'m str);

/// Fails where one item is given two `generate` rules: in [secrets], or in
/// a profile's view of it.
///
/// A view is never built, as thousands of entries times dozens of profiles
/// would make every command slow on a hostile manifest. [secrets] is
/// checked once. In a profile's view, a clash must involve what the profile
/// adds: its own entries, or the entries of [secrets] that name no service
/// and that its [defaults] moves to another service ("moved"). Moved
/// entries cannot clash with each other (they shared one item in [secrets]
/// already), so they clash only with entries that [secrets] names with the
/// profile's service, which is worked out once per such service, or with
/// the profile's own entries. Each profile then costs what its own entries
/// do, and the whole check is linear.
fn check_generate_rules<'m>(
    manifest: &'m Manifest,
    conflict: impl Fn(&Entry, &Entry, &str, Option<&str>) -> Error,
) -> Result<(), Error> {
    use std::collections::HashMap;
    // [secrets]' entries with `generate`. Those that name their service,
    // by item: the rule, one of them, how many. Those that name none (all
    // of [defaults]' service), by username: the same.
    let mut named: HashMap<Item<'m>, (Generate, &'m Entry, usize)> = HashMap::new();
    let mut defaulted: HashMap<&'m str, (Generate, &'m Entry, usize)> = HashMap::new();
    for entry in &manifest.entries {
        let Some(rule) = entry.generate else { continue };
        let item = (entry.service.as_str(), entry.username.as_str());
        let (first, other, count) = if entry.service_from_defaults {
            defaulted.entry(item.1).or_insert((rule, entry, 0))
        } else {
            named.entry(item).or_insert((rule, entry, 0))
        };
        if *first != rule {
            return Err(conflict(entry, other, item.0, None));
        }
        *count += 1;
    }
    // A named and a defaulted entry on one item (a name that repeats
    // [defaults]' service).
    for (user, (rule, moved, _)) in &defaulted {
        if let Some((theirs, other, _)) = named.get(&(moved.service.as_str(), *user))
            && theirs != rule
        {
            return Err(conflict(moved, other, &moved.service, None));
        }
    }
    let base_default = defaulted
        .values()
        .next()
        .map(|(_, d, _)| d.service.as_str());
    let generating: HashMap<&'m str, &'m Entry> = manifest
        .entries
        .iter()
        .filter(|e| e.generate.is_some())
        .map(|e| (e.name.as_str(), e))
        .collect();
    let mut named_by_service: HashMap<&'m str, Vec<&'m str>> = HashMap::new();
    for (service, user) in named.keys() {
        named_by_service.entry(service).or_default().push(user);
    }
    for profile in &manifest.profiles {
        let under = Some(profile.name.as_str());
        // Where [secrets]' defaulted entries are in this view.
        let moved_to = profile
            .default_service
            .as_deref()
            .filter(|service| base_default.is_some_and(|base| base != *service));
        let defaulted_at = moved_to.or(base_default);
        // How many of [secrets]' entries the profile replaces, of each kind.
        let mut named_gone: HashMap<Item<'m>, usize> = HashMap::new();
        let mut defaulted_gone: HashMap<&'m str, usize> = HashMap::new();
        for entry in &profile.entries {
            if let Some(base) = generating.get(entry.name.as_str()) {
                if base.service_from_defaults {
                    *defaulted_gone.entry(base.username.as_str()).or_default() += 1;
                } else {
                    let item = (base.service.as_str(), base.username.as_str());
                    *named_gone.entry(item).or_default() += 1;
                }
            }
        }
        // [secrets]' rule at `item` in this view, and an entry that gives it.
        let theirs = |item: Item<'m>| -> Option<(Generate, &'m Entry)> {
            let named_left = named
                .get(&item)
                .filter(|(_, _, count)| *count > named_gone.get(&item).copied().unwrap_or(0));
            let defaulted_left = defaulted
                .get(item.1)
                .filter(|_| defaulted_at == Some(item.0))
                .filter(|(_, _, count)| *count > defaulted_gone.get(item.1).copied().unwrap_or(0));
            // Both left means one rule: another was reported as a clash
            // of [secrets] or of the move, before any own entry is looked at.
            named_left
                .or(defaulted_left)
                .map(|(rule, entry, _)| (*rule, *entry))
        };
        // A move that lands defaulted entries on an item [secrets] names
        // with another rule.
        if let Some(service) = moved_to {
            for user in named_by_service.get(service).into_iter().flatten() {
                let item = (service, *user);
                let (Some((a, x, _)), Some((b, d, _))) = (named.get(&item), defaulted.get(user))
                else {
                    continue;
                };
                let named_left = *named.get(&item).map_or(&0, |(_, _, c)| c)
                    > named_gone.get(&item).copied().unwrap_or(0);
                let moved_left = *defaulted.get(user).map_or(&0, |(_, _, c)| c)
                    > defaulted_gone.get(user).copied().unwrap_or(0);
                if a != b && named_left && moved_left {
                    return Err(conflict(d, x, service, under));
                }
            }
        }
        let mut own: HashMap<Item<'m>, (Generate, &'m Entry)> = HashMap::new();
        for entry in &profile.entries {
            let Some(rule) = entry.generate else { continue };
            let item = (entry.service.as_str(), entry.username.as_str());
            let (first, other) = *own.entry(item).or_insert((rule, entry));
            let clash = if first == rule {
                theirs(item)
                    .filter(|(there, _)| *there != rule)
                    .map(|(_, e)| e)
            } else {
                Some(other)
            };
            if let Some(other) = clash {
                return Err(conflict(entry, other, item.0, under));
            }
        }
    }
    Ok(())
}

/// A `[profiles.NAME]` table, checked, with its entries still to parse
/// (they need the manifest's `[defaults]`, which may come later).
struct RawProfile<'a, 'i> {
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
    if !super::is_profile_name(text) {
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
fn defaults(
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

fn store_kind(
    value: &Spanned<DeValue<'_>>,
    fail: &impl Fn(Range<usize>, String) -> Error,
) -> Result<StoreKind, Error> {
    let name = string(value, "store", fail)?;
    StoreKind::from_spelling(&name).ok_or_else(|| fail(value.span(), unknown_store(&name)))
}

/// The entries of a `[secrets]` table, in the order of the file.
fn parse_entries(
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
        match field.get_ref().as_ref() {
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
            other if VALUE_KEYS.contains(&other) => {
                return Err(fail(field.span(), value_in_entry(&name, Some(other))));
            }
            other => {
                return Err(fail(
                    field.span(),
                    format!(
                        "unknown key `{other}` in `{name}`; expected one of {}",
                        ENTRY_KEYS.join(", ")
                    ),
                ));
            }
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

fn value_in_defaults(what: &str, key: &str) -> String {
    format!(
        "{what} holds a value (`{key} = ...`), but secrets belong in the keyring, not \
         in a checked-in manifest; remove it and store each value with: with-secrets set NAME"
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest, Error> {
        Manifest::parse(Path::new("secrets.toml"), text)
    }

    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

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

    #[test]
    fn one_item_made_two_ways_is_refused_where_the_second_way_is() {
        let message = error(
            "[secrets]\nA = { service = \"s\", username = \"u\", generate = true }\n\
             B = { service = \"s\", username = \"u\", generate = { charset = \"hex\" } }\n",
        );
        assert!(
            message.starts_with(
                "secrets.toml:3:1: `B` and `A` are one keyring item (s / u), with different \
                 `generate` rules"
            ),
            "{message}"
        );
        // In a profile's view of the manifest too, and one made by a
        // profile's [defaults], which says so.
        let message = error(
            "[defaults]\nservice = \"s\"\n[secrets]\nA = { username = \"u\", generate = true }\n\
             B = { service = \"t\", username = \"u\", generate = { length = 20 } }\n\
             [profiles.p.defaults]\nservice = \"t\"\n",
        );
        assert!(
            message.starts_with(
                "secrets.toml:4:1: `A` and `B` are one keyring item (t / u) under [profiles.p]"
            ),
            "{message}"
        );
        let message = error(
            "[secrets]\nA = { service = \"s\", username = \"u\", generate = true }\n\
             [profiles.p.secrets]\nB = { service = \"s\", username = \"u\", generate = { length = 20 } }\n",
        );
        assert!(
            message.starts_with("secrets.toml:4:1: `B` and `A`"),
            "{message}"
        );
        // The same rule twice, or the rule on one name only, is one item made one way.
        parse(
            "[secrets]\nA = { service = \"s\", username = \"u\", generate = true }\n\
             B = { service = \"s\", username = \"u\", generate = { length = 32 } }\n\
             C = { service = \"s\", username = \"u\" }\n",
        )
        .unwrap();
    }

    /// Whether some view of `manifest` ([secrets], or a profile's) gives one
    /// item two rules, found the plain way: by building every view.
    fn clashes_plainly(manifest: &Manifest) -> bool {
        let mut views = vec![manifest.entries.clone()];
        for profile in &manifest.profiles {
            views.push(
                manifest
                    .clone()
                    .with_profile(&profile.name, "--profile")
                    .unwrap()
                    .0
                    .entries,
            );
        }
        views.iter().any(|entries| {
            entries.iter().any(|a| {
                entries.iter().any(|b| {
                    a.service == b.service
                        && a.username == b.username
                        && a.generate.is_some()
                        && b.generate.is_some()
                        && a.generate != b.generate
                })
            })
        })
    }

    proptest::proptest! {
        // Clashes need two entries on one user with two rules, often through
        // a profile's [defaults]: enough cases to meet each kind many times.
        #![proptest_config(proptest::test_runner::Config::with_cases(3000))]
        #[test]
        fn the_linear_rule_check_finds_exactly_the_clashes_every_view_has(
            base in proptest::collection::vec((0..4usize, 0..3usize, 0..2usize, 0..3usize), 0..6),
            default in 0..3usize,
            profiles in proptest::collection::vec(
                (proptest::option::of(0..3usize), proptest::collection::vec((0..6usize, 0..3usize, 0..2usize, 0..3usize), 0..4)),
                0..3,
            ),
        ) {
            // service 0 means none (from [defaults]); rule 0 means none.
            let entry = |name: String, service: usize, user: usize, rule: usize| {
                let service = if service == 0 { String::new() } else { format!("service = \"s{service}\", ") };
                let rule = ["", ", generate = true", ", generate = { length = 20 }"][rule];
                format!("{name} = {{ {service}username = \"u{user}\"{rule} }}\n")
            };
            let mut text = format!("[defaults]\nservice = \"s{default}\"\n[secrets]\n");
            let mut seen = std::collections::HashSet::new();
            for (name, service, user, rule) in &base {
                if seen.insert(*name) {
                    text.push_str(&entry(format!("N{name}"), *service, *user, *rule));
                }
            }
            for (index, (default, entries)) in profiles.iter().enumerate() {
                if let Some(default) = default {
                    text.push_str(&format!("[profiles.p{index}.defaults]\nservice = \"s{default}\"\n"));
                }
                text.push_str(&format!("[profiles.p{index}.secrets]\n"));
                let mut seen = std::collections::HashSet::new();
                for (name, service, user, rule) in entries {
                    if seen.insert(*name) {
                        text.push_str(&entry(format!("N{name}"), *service, *user, *rule));
                    }
                }
            }
            let plain = Manifest::parse_checking(Path::new("secrets.toml"), &text, false).unwrap();
            let checked = Manifest::parse(Path::new("secrets.toml"), &text);
            proptest::prop_assert_eq!(checked.is_err(), clashes_plainly(&plain), "{}", text);
        }
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

    #[test]
    fn names_follow_the_posix_shape() {
        for name in ["A", "_", "a_b", "ABC123", "_9"] {
            assert!(EnvName::is_valid(name), "{name}");
        }
        for name in ["", "9", "A-B", "A B", "A=B", "Ä"] {
            assert!(!EnvName::is_valid(name), "{name}");
        }
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
