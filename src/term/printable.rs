//! Strings from outside (the manifest, its paths, store messages) made safe
//! to print: no control character, bidirectional override or zero-width
//! character of theirs reaches the terminal as itself.

use std::path::Path;

/// `text` with every control character escaped (`\u{1b}`, `\n`): for a
/// string from the manifest, which is checked in and may be hostile, so a
/// service, username, description or quoted key can hold terminal escapes
/// that would recolour, retitle or rewrite the terminal it is printed on.
pub(crate) fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    escape_controls(text, |_| true)
}

/// The first line of a message: its gist, without the advice below it.
pub(crate) fn first_line(err: &impl std::fmt::Display) -> String {
    err.to_string()
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
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
pub(crate) fn printable_path(path: &Path) -> String {
    printable(&path.to_string_lossy()).into_owned()
}

/// `text` with every control character but the line break escaped: for a
/// whole message on its way to the terminal, whose own lines must stay
/// lines. Every line with-secrets writes to stderr goes through this, so a
/// hostile string that reached a message unescaped is still made harmless.
pub(crate) fn printable_lines(text: &str) -> std::borrow::Cow<'_, str> {
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
