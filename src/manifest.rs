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

/// The largest manifest we read: 1 MiB. A real one maps a few dozen names
/// in a few kilobytes; anything near this size is the wrong file (a log, a
/// dump, `/dev/zero` given to `-m`), and reading it whole, parsing it and
/// looking up every entry in it would only make with-secrets slow to say so.
pub const MAX_BYTES: usize = 1 << 20;

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
    /// Reads and checks the manifest `locate` found. One found by walking up
    /// is refused if another user owns it (see [`refuse_foreign`]), as
    /// checked on the very file that is then read.
    pub fn load(located: &Located) -> Result<Self, Error> {
        use std::io::Read as _;
        let path = located.path.as_path();
        let read_error = |source| Error::ManifestRead {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read_error)?;
        if located.walked {
            refuse_foreign(path, &file)?;
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
            return Err(too_big(path, &text));
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
                return Err(Error::manifest(
                    path,
                    &text[mark..],
                    valid - mark..valid - mark + 1,
                    "the file is not valid UTF-8".into(),
                ));
            }
        };
        Self::parse(path, &text)
    }

    /// Checks manifest `text`; `path` is only used in messages.
    pub fn parse(path: &Path, text: &str) -> Result<Self, Error> {
        if text.len() > MAX_BYTES {
            return Err(too_big(path, text));
        }
        // A byte-order mark is harmless; editors on Windows write one.
        let body = text.strip_prefix('\u{feff}').unwrap_or(text);
        // Errors are located in the text after the mark, which is what an
        // editor shows: the mark is invisible and would shift the column.
        let fail = |span: Range<usize>, message: String| {
            Error::manifest(path, body, span, printable(&message).into_owned())
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

        // Where each line starts, so that finding an entry's line is a
        // search, not a count from the top (which made a long manifest slow).
        let newlines: Vec<usize> = body.match_indices('\n').map(|(i, _)| i).collect();
        let line_of = |offset: usize| newlines.partition_point(|&i| i < offset) + 1;
        let mut entries = Vec::new();
        for (key, value) in secrets.into_iter().flatten() {
            entries.push(parse_entry(
                key,
                value,
                default_service.as_deref(),
                &line_of,
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
        line: line_of(key.span().start),
    })
}

/// `text` with every control character escaped (`\u{1b}`, `\n`): for a
/// string from the manifest, which is checked in and may be hostile, so a
/// service, username, description or quoted key can hold terminal escapes
/// that would recolour, retitle or rewrite the terminal it is printed on.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    escape_controls(text, |_| true)
}

/// Characters that print nothing but change what the text around them
/// looks like: bidirectional overrides and isolates, which can reorder a
/// service or username on screen ("Trojan Source", CVE-2021-42574), and
/// zero-width characters that make two different strings look alike.
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{061C}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
    )
}

/// A path as [`printable`] shows a string: the manifest's own path, and
/// the folders above it, are named by whoever made the checkout.
pub fn printable_path(path: &Path) -> String {
    printable(&path.to_string_lossy()).into_owned()
}

/// `text` with every control character but the line break escaped: for a
/// whole message on its way to the terminal, whose own lines must stay
/// lines. Every line with-secrets writes to stderr goes through this, so a
/// hostile string that reached a message unescaped is still made harmless.
pub fn printable_lines(text: &str) -> std::borrow::Cow<'_, str> {
    escape_controls(text, |c| c != '\n')
}

fn escape_controls(text: &str, escape: impl Fn(char) -> bool) -> std::borrow::Cow<'_, str> {
    let hostile = |c: char| (c.is_control() || is_invisible_format(c)) && escape(c);
    if !text.chars().any(hostile) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if hostile(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// The error for a manifest over [`MAX_BYTES`], located where it crosses the limit.
fn too_big(path: &Path, text: &str) -> Error {
    let at = floor_char_boundary(text, MAX_BYTES.min(text.len()));
    Error::manifest(
        path,
        &text[..at],
        at..at,
        format!(
            "the manifest is larger than {} MiB, which no secrets.toml needs; \
             is this the right file?",
            MAX_BYTES >> 20
        ),
    )
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

/// Where the manifest is, and whether it was found by walking up (rather
/// than named by `--manifest` or `WITH_SECRETS_MANIFEST`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub path: PathBuf,
    pub walked: bool,
}

/// Finds the manifest: an explicit path (from `--manifest` or
/// `WITH_SECRETS_MANIFEST`), else the nearest `secrets.toml` from `cwd` upward.
pub fn locate(explicit: Option<&Path>, cwd: &Path) -> Result<Located, Error> {
    if let Some(path) = explicit {
        return Ok(Located {
            path: path.to_owned(),
            walked: false,
        });
    }
    let mut searched = Vec::new();
    for dir in cwd.ancestors() {
        let candidate = dir.join(FILE_NAME);
        if candidate.is_file() {
            return Ok(Located {
                path: candidate,
                walked: true,
            });
        }
        searched.push(dir.to_owned());
    }
    Err(Error::ManifestNotFound { searched })
}

/// Refuses a manifest found by walking up that belongs to another user.
///
/// The walk crosses folders other people may write to: a shared `/tmp`, a
/// group project folder, a mounted volume. A `secrets.toml` someone else
/// planted above your checkout would choose which keyring items your
/// commands receive, and under which names. git refuses repositories owned
/// by others for the same reason since CVE-2022-24765. Yours and root's are
/// used; anyone else's only when named with `-m`, which says you mean it.
///
/// The owner is read from `file`, the one already open for reading, so the
/// path cannot be swapped between check and read. A symbolic link there
/// must be yours or root's too: its owner chose where it points.
#[cfg(unix)]
fn refuse_foreign(path: &Path, file: &std::fs::File) -> Result<(), Error> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let foreign = |owner: u32| owner != me && owner != 0;
    let link = std::fs::symlink_metadata(path)
        .ok()
        .filter(|meta| meta.file_type().is_symlink());
    let owners = [
        link.map(|meta| meta.uid()),
        file.metadata().ok().map(|meta| meta.uid()),
    ];
    match owners.into_iter().flatten().find(|&owner| foreign(owner)) {
        Some(owner) => Err(Error::ManifestNotOwned {
            path: path.to_owned(),
            owner,
        }),
        None => Ok(()),
    }
}

#[cfg(not(unix))]
fn refuse_foreign(_path: &Path, _file: &std::fs::File) -> Result<(), Error> {
    Ok(())
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

/// How many characters of the line a snippet shows on each side of the error
/// (and of the error itself, at most); the rest of a longer line is `…`.
const SNIPPET_CONTEXT: usize = 80;

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
        // The ranges are sorted and disjoint, so a binary search finds the
        // one at `pos`: a scan per character made a long line quadratic.
        let masked_at = |pos: usize| {
            masked
                .get(masked.partition_point(|range| range.end <= pos))
                .filter(|range| range.contains(&pos))
        };
        // A window of the line around the error, so that a one-line file of
        // a megabyte gives a snippet, not a megabyte of output.
        let from = text[line_start..start]
            .char_indices()
            .rev()
            .nth(SNIPPET_CONTEXT - 1)
            .map_or(line_start, |(i, _)| line_start + i);
        let span_end = end.clamp(start, line_end);
        let span_end = text[start..span_end]
            .char_indices()
            .nth(SNIPPET_CONTEXT)
            .map_or(span_end, |(i, _)| start + i);
        let to = text[span_end..line_end]
            .char_indices()
            .nth(SNIPPET_CONTEXT)
            .map_or(line_end, |(i, _)| span_end + i);

        let mut out = String::new();
        let mut caret_start = None;
        let mut caret_end = None;
        let mut chars = 0;
        if from > line_start {
            out.push('…');
            chars += 1;
        }
        let mut pos = from;
        while pos < to {
            if pos == start {
                caret_start = Some(chars);
            }
            if pos == end {
                caret_end = Some(chars);
            }
            if let Some(range) = masked_at(pos) {
                let replacement = if text[pos..].starts_with('#') {
                    "# ***"
                } else {
                    "***"
                };
                out.push_str(replacement);
                chars += replacement.chars().count();
                let skip_to = range.end.min(to);
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
            // Other control characters could move the cursor or recolour
            // the terminal the error is printed on.
            let shown = match c {
                '\t' | '\r' => ' ',
                c if c.is_control() => '\u{fffd}',
                c => c,
            };
            if c != '\r' {
                out.push(shown);
                chars += 1;
            }
            pos += c.len_utf8();
        }
        let caret_start = caret_start.unwrap_or(chars);
        let caret_end = caret_end.unwrap_or(chars).max(caret_start + 1);
        if to < line_end {
            out.push('…');
        }
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
            b if !matches!(
                b,
                b' ' | b'\t' | b'\r' | b'[' | b']' | b'{' | b'}' | b',' | b'.' | b'='
            ) =>
            {
                // A bare word: a key, `true` or `false`, or a value pasted
                // without quotes (`API_TOKEN = ghp_...`, `DB = postgres://...`).
                let end = bytes[i..]
                    .iter()
                    .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-'))
                    .map_or(bytes.len(), |n| i + n);
                let line_end = text[i..].find('\n').map_or(text.len(), |n| i + n);
                let next = bytes[end..line_end]
                    .iter()
                    .find(|b| !matches!(b, b' ' | b'\t' | b'\r'))
                    .copied();
                let word = &text[i..end];
                let ends_cleanly = matches!(next, None | Some(b',' | b'}' | b']' | b'#'));
                let shown = if value_key.is_some() {
                    matches!(word, "true" | "false") && ends_cleanly
                } else {
                    end > i && matches!(next, Some(b'=' | b'.' | b']'))
                };
                if shown {
                    if value_key.is_none() {
                        last_key = word.to_owned();
                    }
                    i = end;
                } else {
                    // Anything else could be a secret, and where an unquoted
                    // one ends is anybody's guess: hide the rest of the line.
                    masked.push(i..line_end);
                    i = line_end;
                }
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
        ];
        for (text, expected) in cases {
            let message = error(&text);
            assert!(message.starts_with(expected), "{expected}: {message}");
        }
    }

    #[test]
    fn discovery_walks_up_and_lists_where_it_looked() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        std::fs::create_dir_all(&nested).unwrap();
        std::fs::write(dir.path().join("a").join(FILE_NAME), "").unwrap();
        assert_eq!(
            locate(None, &nested).unwrap().path,
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
