//! The manifest, `secrets.toml`: where it is, what it says, and what is wrong with it.
//!
//! A manifest maps environment variable names to keyring entries and never holds
//! a value. It is checked in, so every mistake in it is reported with its file,
//! line, column and a snippet, and the snippet never shows a string that might
//! be a secret (see [`Snippet`]).

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::error::Error;
use crate::store::StoreKind;

/// The file name that discovery looks for.
pub const FILE_NAME: &str = "secrets.toml";

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
    pub fn new(name: &str) -> Option<Self> {
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
    /// Reads and checks the manifest at `path`.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let bytes = std::fs::read(path).map_err(|source| Error::ManifestRead {
            path: path.to_owned(),
            source,
        })?;
        // Decode ourselves: a lossy decode would hide the problem, and the
        // toml error would not say where the bad byte is.
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(err) => {
                let valid = err.utf8_error().valid_up_to();
                let text = String::from_utf8_lossy(err.as_bytes()).into_owned();
                return Err(Error::manifest(
                    path,
                    &text,
                    valid..valid + 1,
                    "the file is not valid UTF-8".into(),
                ));
            }
        };
        Self::parse(path, &text)
    }

    /// Checks manifest `text`; `path` is only used in messages.
    pub fn parse(path: &Path, text: &str) -> Result<Self, Error> {
        // A byte-order mark is harmless; editors on Windows write one.
        let body = text.strip_prefix('\u{feff}').unwrap_or(text);
        let offset = text.len() - body.len();
        let fail = |span: Range<usize>, message: String| {
            Error::manifest(path, text, span.start + offset..span.end + offset, message)
        };
        let doc = DeTable::parse(body).map_err(|err| {
            let span = err.span().unwrap_or(0..0);
            fail(span, err.message().trim_end().to_owned())
        })?;

        let mut default_service = None;
        let mut secrets = None;
        let mut store = None;
        for (key, value) in doc.get_ref() {
            match key.get_ref().as_ref() {
                "defaults" => {
                    let table = expect_table(value, "`[defaults]`", &fail)?;
                    for (key, value) in table {
                        match key.get_ref().as_ref() {
                            "service" => {
                                default_service = Some(non_empty_string(value, "service", &fail)?)
                            }
                            other if VALUE_KEYS.contains(&other) => {
                                return Err(fail(key.span(), value_in_defaults(other)));
                            }
                            other => {
                                return Err(fail(
                                    key.span(),
                                    format!(
                                        "unknown key `{other}` in [defaults]; expected `service`"
                                    ),
                                ));
                            }
                        }
                    }
                }
                "secrets" => secrets = Some(expect_table(value, "`[secrets]`", &fail)?),
                "store" => {
                    let name = string(value, "store", &fail)?;
                    let kind = <StoreKind as clap::ValueEnum>::from_str(&name, false)
                        .map_err(|_| fail(value.span(), unknown_store(&name)))?;
                    store = Some(kind);
                }
                other => {
                    return Err(fail(
                        key.span(),
                        format!(
                            "unknown key `{other}`; expected `store`, `[defaults]` or `[secrets]`"
                        ),
                    ));
                }
            }
        }

        let mut entries = Vec::new();
        for (key, value) in secrets.into_iter().flatten() {
            entries.push(parse_entry(
                key,
                value,
                default_service.as_deref(),
                body,
                &fail,
            )?);
        }
        // The table is a sorted map; report and resolve in the order of the file.
        entries.sort_by_key(|entry| entry.line);
        Ok(Self {
            path: path.to_owned(),
            store,
            entries,
        })
    }

    /// The entry for variable `name`, if the manifest has one.
    pub fn entry(&self, name: &str) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|entry| entry.name.as_str() == name)
    }
}

fn parse_entry(
    key: &Spanned<std::borrow::Cow<'_, str>>,
    value: &Spanned<DeValue<'_>>,
    default_service: Option<&str>,
    text: &str,
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
    for (field, field_value) in table {
        match field.get_ref().as_ref() {
            "service" => service = Some(non_empty_string(field_value, "service", fail)?),
            "username" => username = Some(non_empty_string(field_value, "username", fail)?),
            "description" => description = Some(string(field_value, "description", fail)?),
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
        line: line_col(text, key.span().start).0,
    })
}

fn unknown_store(name: &str) -> String {
    let names: Vec<_> = <StoreKind as clap::ValueEnum>::value_variants()
        .iter()
        .filter_map(clap::ValueEnum::to_possible_value)
        .map(|value| value.get_name().to_owned())
        .collect();
    format!(
        "unknown store `{name}`; expected one of {}",
        names.join(", ")
    )
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

fn value_in_defaults(key: &str) -> String {
    format!(
        "[defaults] holds a value (`{key} = ...`), but secrets belong in the keyring, not \
         in a checked-in manifest; remove it and store each value with: with-secrets set NAME"
    )
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

/// Finds the manifest: an explicit path (from `--manifest` or
/// `WITH_SECRETS_MANIFEST`), else the nearest `secrets.toml` from `cwd` upward.
pub fn locate(explicit: Option<&Path>, cwd: &Path) -> Result<PathBuf, Error> {
    if let Some(path) = explicit {
        return Ok(path.to_owned());
    }
    let mut searched = Vec::new();
    for dir in cwd.ancestors() {
        let candidate = dir.join(FILE_NAME);
        if candidate.is_file() {
            return Ok(candidate);
        }
        searched.push(dir.to_owned());
    }
    Err(Error::ManifestNotFound { searched })
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = floor_char_boundary(text, offset.min(text.len()));
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// The source line of an error, with every string that could be a secret masked.
///
/// Error snippets are printed to terminals and CI logs, and the line that has
/// the error is, more often than not, the line where someone pasted a token.
/// So string contents are shown only where they are known not to be secret:
/// the values of `service`, `username`, `description` and `store`, and
/// quoted keys.
/// Every other string becomes `"***"`, and comments become `# ***`.
pub(crate) struct Snippet {
    pub line: usize,
    pub column: usize,
    pub text: String,
    /// Character column (0-based) and width of the caret under `text`.
    pub caret: (usize, usize),
}

impl Snippet {
    pub(crate) fn new(text: &str, span: Range<usize>) -> Self {
        let start = floor_char_boundary(text, span.start.min(text.len()));
        let end = floor_char_boundary(text, span.end.clamp(start, text.len()));
        let (line, column) = line_col(text, start);
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let masked = masked_ranges(text);

        let mut out = String::new();
        let mut caret_start = None;
        let mut caret_end = None;
        let mut chars = 0;
        let mut pos = line_start;
        while pos < line_end {
            if pos == start {
                caret_start = Some(chars);
            }
            if pos == end {
                caret_end = Some(chars);
            }
            if let Some(range) = masked.iter().find(|r| r.contains(&pos)) {
                let replacement = if text[pos..].starts_with('#') {
                    "# ***"
                } else {
                    "***"
                };
                out.push_str(replacement);
                chars += replacement.chars().count();
                let skip_to = range.end.min(line_end);
                if (pos..skip_to).contains(&start) {
                    caret_start.get_or_insert(chars - replacement.len());
                }
                if (pos + 1..=skip_to).contains(&end) && end > start {
                    caret_end = Some(chars);
                }
                pos = skip_to;
                continue;
            }
            let c = text[pos..].chars().next().expect("pos is a char boundary");
            // Tabs and carriage returns would shift or hide the caret.
            let shown = if c == '\t' || c == '\r' { ' ' } else { c };
            if c != '\r' {
                out.push(shown);
                chars += 1;
            }
            pos += c.len_utf8();
        }
        let caret_start = caret_start.unwrap_or(chars);
        let caret_end = caret_end.unwrap_or(chars).max(caret_start + 1);
        Self {
            line,
            column,
            text: out,
            caret: (caret_start, caret_end - caret_start),
        }
    }
}

impl fmt::Display for Snippet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let number = self.line.to_string();
        let pad = " ".repeat(number.len());
        writeln!(f, "{pad} |")?;
        writeln!(f, "{number} | {}", self.text)?;
        write!(
            f,
            "{pad} | {}{}",
            " ".repeat(self.caret.0),
            "^".repeat(self.caret.1)
        )
    }
}

/// Byte ranges of `text` that a snippet must not show: the contents of every
/// string that is a value of a key other than `service`, `username` or
/// `description`, and every comment.
fn masked_ranges(text: &str) -> Vec<Range<usize>> {
    const SHOWN: &[&str] = &["service", "username", "description", "store"];
    let bytes = text.as_bytes();
    let mut masked = Vec::new();
    let mut last_key = String::new();
    let mut value_key: Option<String> = None;
    // Open inline tables and arrays, each with the value key outside it.
    let mut nesting: Vec<(u8, Option<String>)> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                let end = text[i..].find('\n').map_or(text.len(), |n| i + n);
                masked.push(i..end);
                i = end;
            }
            b'\n' => {
                // A newline ends a value, except inside a multi-line array.
                if nesting.is_empty() {
                    value_key = None;
                }
                i += 1;
            }
            b'=' => {
                value_key = Some(std::mem::take(&mut last_key));
                i += 1;
            }
            open @ (b'{' | b'[') if value_key.is_some() => {
                nesting.push((open, value_key.take()));
                if open == b'[' {
                    // Strings in an array are values of the array's key.
                    value_key.clone_from(&nesting.last().expect("just pushed").1);
                }
                i += 1;
            }
            b',' if nesting.last().is_some_and(|(open, _)| *open == b'{') => {
                value_key = None;
                i += 1;
            }
            b'}' | b']' => {
                if let Some((_, key)) = nesting.pop() {
                    value_key = key;
                }
                i += 1;
            }
            quote @ (b'"' | b'\'') => {
                let triple = bytes[i..].starts_with(&[quote; 3]);
                let open = if triple { 3 } else { 1 };
                let content_start = i + open;
                let content_end = string_end(bytes, content_start, quote, triple);
                let close_end = (content_end + open).min(bytes.len());
                let next = bytes[close_end..]
                    .iter()
                    .find(|b| !matches!(b, b' ' | b'\t'))
                    .copied();
                let is_key = value_key.is_none() || matches!(next, Some(b'=' | b'.'));
                if is_key {
                    last_key = text[content_start..content_end].to_owned();
                } else if !value_key.as_deref().is_some_and(|key| SHOWN.contains(&key))
                    && content_end > content_start
                {
                    masked.push(content_start..content_end);
                }
                i = close_end;
            }
            b if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' => {
                let end = bytes[i..]
                    .iter()
                    .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-'))
                    .map_or(bytes.len(), |n| i + n);
                last_key = text[i..end].to_owned();
                i = end;
            }
            _ => i += 1,
        }
    }
    masked
}

/// The offset of the closing quote of a string whose contents start at `start`,
/// or the end of the line (end of text for multi-line strings) if it has none.
fn string_end(bytes: &[u8], start: usize, quote: u8, triple: bool) -> usize {
    let mut i = start;
    while i < bytes.len() {
        let b = bytes[i];
        if quote == b'"' && b == b'\\' {
            i += 2;
            continue;
        }
        if !triple && b == b'\n' {
            return i;
        }
        if b == quote && (!triple || bytes[i..].starts_with(&[quote; 3])) {
            return i;
        }
        i += 1;
    }
    bytes.len()
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
        let message = error("store = \"vault\"\n");
        assert!(
            message.starts_with(
                "secrets.toml:1:9: unknown store `vault`; expected one of auto, secret-service"
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

    #[test]
    fn discovery_walks_up_and_lists_where_it_looked() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        std::fs::create_dir_all(&nested).unwrap();
        std::fs::write(dir.path().join("a").join(FILE_NAME), "").unwrap();
        assert_eq!(
            locate(None, &nested).unwrap(),
            dir.path().join("a").join(FILE_NAME)
        );
        let empty = tempfile::tempdir().unwrap();
        match locate(None, empty.path()) {
            Err(Error::ManifestNotFound { searched }) => {
                assert_eq!(searched[0], empty.path());
                assert_eq!(searched.last().unwrap(), Path::new("/"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn masking_keeps_references_and_hides_everything_else() {
        let text = "A = { service = \"svc\", username = 'me', x = \"s1\" } # c\n\"Q K\" = \"s2\"\nB = [\"s3\"]\nC = \"\"\"\ns4\"\"\"\n";
        let shown: String = {
            let mut out = text.to_owned();
            for range in masked_ranges(text).into_iter().rev() {
                out.replace_range(range, "*");
            }
            out
        };
        assert_eq!(
            shown,
            "A = { service = \"svc\", username = 'me', x = \"*\" } *\n\"Q K\" = \"*\"\nB = [\"*\"]\nC = \"\"\"*\"\"\"\n"
        );
    }
}
