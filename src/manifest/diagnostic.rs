//! Manifest errors as a person sees them: file, line, column, and a snippet
//! of the line in which every string that could be a secret is masked and
//! nothing can drive the terminal.

use std::fmt;
use std::ops::Range;
use std::path::Path;

use super::MAX_BYTES;
use crate::error::Error;

/// A located manifest error, with a snippet of the line that hides secrets.
pub(super) fn located(path: &Path, text: &str, span: Range<usize>, message: String) -> Error {
    let snippet = Snippet::new(text, span);
    Error::Manifest {
        path: path.to_owned(),
        line: snippet.line,
        column: snippet.column,
        message,
        snippet: snippet.to_string(),
    }
}

/// The error for a manifest over [`MAX_BYTES`], located where it crosses the limit.
pub(super) fn too_big(path: &Path, text: &str) -> Error {
    let at = floor_char_boundary(text, MAX_BYTES.min(text.len()));
    located(
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
    pub(crate) line: usize,
    pub(crate) column: usize,
    pub(crate) text: String,
    /// Character column (0-based) and width of the caret under `text`.
    pub(crate) caret: (usize, usize),
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
