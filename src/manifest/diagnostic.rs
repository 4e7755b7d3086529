//! Manifest errors as a person sees them: file, line, column, and a snippet
//! of the line in which every string that could be a secret is masked and
//! nothing can drive the terminal.

use std::fmt;
use std::iter::Peekable;
use std::ops::Range;
use std::path::Path;

use toml_parser::Source;
use toml_parser::lexer::{Token, TokenKind};

use super::Error;
use super::{MAX_BYTES, keys};

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
/// string that is neither a key nor the value of a key that
/// [`keys::is_shown`] allows (`service`, `username`...), every comment, and
/// the rest of the line from any unquoted value.
///
/// The tokens are `toml_parser`'s, the lexer `toml` itself parses with, so
/// the masking splits the line where the parser does. Its lexer never fails:
/// whatever it cannot make sense of becomes a token too (an unterminated
/// string runs to the end of its line, or of the file if multi-line, and
/// anything else is an "atom"), which matters here, as a snippet is most
/// often shown for a syntax error. What is left to us is only which token
/// is a key and which a value, and when unsure, it is masked.
fn masked_ranges(text: &str) -> Vec<Range<usize>> {
    let source = Source::new(text);
    // A lone carriage return is a newline to the lexer but not to a snippet,
    // whose lines end at `\n`: it must not end a value (`A = \r"secret"`).
    // Neither it nor whitespace changes anything below, so dropping both
    // makes `peek` the next token that matters.
    let mut tokens = source
        .lex()
        .filter(|token| match token.kind() {
            TokenKind::Whitespace => false,
            TokenKind::Newline => text[range(token)].ends_with('\n'),
            _ => true,
        })
        .peekable();
    let mut masked = Vec::new();
    let mut last_key = "";
    let mut value_key: Option<&str> = None;
    // Open inline tables and arrays, each with the value key outside it.
    let mut nesting: Vec<(TokenKind, Option<&str>)> = Vec::new();
    while let Some(token) = tokens.next() {
        let next = tokens.peek().map(Token::kind);
        match token.kind() {
            TokenKind::Comment => {
                // Masked to the end of the line rather than where the lexer
                // ends it: at a lone carriage return.
                let end = rest_of_line(&mut tokens, text.len());
                masked.push(token.span().start()..end);
            }
            // A newline ends a value, except inside a multi-line array.
            TokenKind::Newline if nesting.is_empty() => value_key = None,
            TokenKind::Equals => value_key = Some(std::mem::take(&mut last_key)),
            open @ (TokenKind::LeftCurlyBracket | TokenKind::LeftSquareBracket)
                if value_key.is_some() =>
            {
                nesting.push((open, value_key.take()));
                if open == TokenKind::LeftSquareBracket {
                    // Strings in an array are values of the array's key.
                    value_key = nesting.last().expect("just pushed").1;
                }
            }
            TokenKind::Comma
                if nesting
                    .last()
                    .is_some_and(|(open, _)| *open == TokenKind::LeftCurlyBracket) =>
            {
                value_key = None;
            }
            TokenKind::RightCurlyBracket | TokenKind::RightSquareBracket => {
                if let Some((_, key)) = nesting.pop() {
                    value_key = key;
                }
            }
            TokenKind::BasicString
            | TokenKind::LiteralString
            | TokenKind::MlBasicString
            | TokenKind::MlLiteralString => {
                let contents = string_contents(text, token);
                // A key is followed by `=` or `.` (or `]` in a table
                // header); a string anywhere else, even alone on a line
                // where a key should be, is a value.
                let is_key = matches!(next, Some(TokenKind::Equals | TokenKind::Dot))
                    || (value_key.is_none() && next == Some(TokenKind::RightSquareBracket));
                if is_key {
                    last_key = &text[contents];
                } else if !value_key.is_some_and(keys::is_shown) && !contents.is_empty() {
                    masked.push(contents);
                }
            }
            TokenKind::Atom => {
                // A bare word: a key, `true` or `false`, or a value pasted
                // without quotes (`API_TOKEN = ghp_...`, `DB = postgres://...`).
                let word = &text[range(&token)];
                let shown = if value_key.is_some() {
                    matches!(word, "true" | "false")
                        && matches!(
                            next,
                            None | Some(
                                TokenKind::Newline
                                    | TokenKind::Eof
                                    | TokenKind::Comma
                                    | TokenKind::RightCurlyBracket
                                    | TokenKind::RightSquareBracket
                                    | TokenKind::Comment
                            )
                        )
                } else {
                    is_bare_key(&source, &token)
                        && matches!(
                            next,
                            Some(
                                TokenKind::Equals | TokenKind::Dot | TokenKind::RightSquareBracket
                            )
                        )
                };
                if shown {
                    if value_key.is_none() {
                        last_key = word;
                    }
                } else {
                    // Anything else could be a secret, and where an unquoted
                    // one ends is anybody's guess: hide the rest of the line.
                    let end = rest_of_line(&mut tokens, text.len());
                    masked.push(token.span().start()..end);
                }
            }
            _ => {}
        }
    }
    masked
}

fn range(token: &Token) -> Range<usize> {
    token.span().start()..token.span().end()
}

/// Skips the tokens up to the end of the line and returns where it ends:
/// at the next `\n` that is not inside a (multi-line) string.
fn rest_of_line(tokens: &mut Peekable<impl Iterator<Item = Token>>, text_end: usize) -> usize {
    while tokens
        .next_if(|token| !matches!(token.kind(), TokenKind::Newline | TokenKind::Eof))
        .is_some()
    {}
    tokens.peek().map_or(text_end, |token| token.span().start())
}

/// The byte range of a string token's contents, without its quotes. An
/// unterminated string (the lexer ends it at the end of its line, or of the
/// file if multi-line) has no closing quotes, so all after the opening ones
/// is contents; if one looks terminated but is not (`"a\"`), a closing quote
/// is shown that was not one, which shows nothing of its contents.
fn string_contents(text: &str, token: Token) -> Range<usize> {
    let raw = &text[range(&token)];
    let quote = match token.kind() {
        TokenKind::BasicString => "\"",
        TokenKind::LiteralString => "'",
        TokenKind::MlBasicString => "\"\"\"",
        _ => "'''",
    };
    let start = token.span().start() + quote.len().min(raw.len());
    let end = if raw.len() >= 2 * quote.len() && raw.ends_with(quote) {
        token.span().end() - quote.len()
    } else {
        token.span().end()
    };
    start..end
}

/// Whether an atom is a bare key, by `toml_parser`'s own decoding of keys.
fn is_bare_key(source: &Source<'_>, token: &Token) -> bool {
    source.get(token).is_some_and(|raw| {
        let mut valid = true;
        raw.decode_key(&mut (), &mut |_| valid = false);
        valid
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `text` with each masked range replaced by `*`.
    fn masked(text: &str) -> String {
        let mut out = text.to_owned();
        for range in masked_ranges(text).into_iter().rev() {
            out.replace_range(range, "*");
        }
        out
    }

    #[test]
    fn masking_keeps_references_and_hides_everything_else() {
        assert_eq!(
            masked(
                "A = { service = \"svc\", username = 'me', x = \"s1\" } # c\n\"Q K\" = \"s2\"\nB = [\"s3\"]\nC = \"\"\"\ns4\"\"\"\n"
            ),
            "A = { service = \"svc\", username = 'me', x = \"*\" } *\n\"Q K\" = \"*\"\nB = [\"*\"]\nC = \"\"\"*\"\"\"\n"
        );
    }

    #[test]
    fn a_multi_line_string_is_masked_on_every_line() {
        assert_eq!(
            masked("A = '''\ns1\nK = 1'''\nB = \"\"\"s2\n\"\"\"\" # c\nservice = \"svc\"\n"),
            "A = '''*'''\nB = \"\"\"*\"\"\" *\nservice = \"svc\"\n"
        );
        // A snippet of a line inside one shows none of it.
        let text = "A = \"\"\"\nsecret = 1\n\"\"\"\n";
        assert_eq!(Snippet::new(text, 8..14).text, "***");
    }

    #[test]
    fn an_escaped_quote_or_backslash_does_not_end_a_basic_string() {
        assert_eq!(
            masked("A = { x = \"s\\\"1, y = \", z = \"s\\\\\", service = \"svc\" }\n"),
            "A = { x = \"*\", z = \"*\", service = \"svc\" }\n"
        );
    }

    #[test]
    fn a_backslash_in_a_literal_string_is_no_escape() {
        assert_eq!(
            masked("A = { x = 'C:\\', service = \"svc\", y = 'a\\\\' }\n"),
            "A = { x = '*', service = \"svc\", y = '*' }\n"
        );
    }

    #[test]
    fn an_unterminated_string_is_masked_to_the_end_of_its_line_or_the_file() {
        assert_eq!(
            masked("A = \"s1\nB = 's2\nC = \"s3\\\"\nservice = \"svc\"\nD = '''s4\nE = 1\n"),
            "A = \"*\nB = '*\nC = \"*\"\nservice = \"svc\"\nD = '''*"
        );
        // A string where a key should be is a key only if it is followed
        // by what follows a key.
        assert_eq!(
            masked("\"s1\"\n\"s2\n[\"T\"]\n\"K\".\"L\" = 1\n"),
            "\"*\"\n\"*\n[\"T\"]\n\"K\".\"L\" = *\n"
        );
    }

    #[test]
    fn an_unquoted_value_is_masked_through_a_multi_line_string_on_its_line() {
        assert_eq!(
            masked("A = x \"\"\"\nK = \"s\"\n\"\"\" y\nservice = \"svc\"\n"),
            "A = *\nservice = \"svc\"\n"
        );
    }

    #[test]
    fn line_ends_are_lf_or_crlf_and_a_lone_carriage_return_ends_nothing() {
        assert_eq!(
            masked("A = ghp_1\r\nB = true\r\nservice = \"svc\" # c\r\n"),
            "A = *\r\nB = true\r\nservice = \"svc\" *\r\n"
        );
        assert_eq!(
            masked("A = \r\"s1\"\n# c\rK = \"s2\"\nB = \"s3\"\r\rK = 1\n"),
            "A = \r\"*\"\n*\nB = \"*\"\r\r*\n"
        );
    }

    #[test]
    fn a_newline_inside_an_array_does_not_end_its_value() {
        assert_eq!(
            masked("A = [\n  true, # c\n  \"s1\",\n]\nB = true\n"),
            "A = [\n  true, *\n  \"*\",\n]\nB = true\n"
        );
    }

    #[test]
    fn a_byte_order_mark_does_not_shift_the_ranges() {
        assert_eq!(masked("\u{feff}A = ghp_1\n"), "\u{feff}A = *\n");
    }

    #[test]
    fn a_bare_key_is_shown_only_if_toml_would_take_it_for_one() {
        assert_eq!(
            masked("a:b = 1\nghp\"x\" = 1\ntok\u{e9}n = 1\n[t]\nk.l-2_M = true\n"),
            "*\n*\n*\n[t]\nk.l-2_M = true\n"
        );
    }

    proptest::proptest! {
        /// `Snippet::new` finds a range by binary search and slices at its ends.
        #[test]
        fn masked_ranges_are_sorted_disjoint_and_on_char_boundaries(
            text in "[\"'#=.,\\[\\]{}\r\n \\\\a-z0-9\u{e9}]{0,80}"
        ) {
            let ranges = masked_ranges(&text);
            for range in &ranges {
                proptest::prop_assert!(range.start < range.end, "{ranges:?}");
                proptest::prop_assert!(text.is_char_boundary(range.start), "{ranges:?}");
                proptest::prop_assert!(text.is_char_boundary(range.end), "{ranges:?}");
            }
            proptest::prop_assert!(
                ranges.windows(2).all(|w| w[0].end <= w[1].start),
                "{ranges:?}"
            );
        }
    }
}
