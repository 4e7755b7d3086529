//! `--mask`'s matcher: replaces each value, wherever it appears in a byte
//! stream, with `<redacted:NAME>`, even when the value arrives split across
//! reads.
//!
//! The stream is scanned left to right. At each position where a value
//! matches, the longest matching value wins (so of `abcd` and `abcdef`, the
//! text `abcdef` is one `<redacted:LONG>`, never `<redacted:SHORT>ef`). The
//! only bytes held back are a tail that is still the start of some value, and
//! so a possible match that the next read would complete: at most the
//! longest value's length minus one. At the end of the stream that tail is
//! let go, as it can no longer complete.
//!
//! No buffer here ever grows: a `Vec` that grows frees its smaller copy of
//! what it held (here, possibly a value) without wiping it. The held bytes
//! have room for one read plus the longest value, and the output goes
//! through an [`Output`] of fixed size; both are wiped when dropped.

use std::io::{self, Read, Write};
use std::sync::Arc;

use zeroize::Zeroizing;

use crate::secret::Secret;

/// Values shorter than this are not masked: `<redacted:X>` in place of every
/// `on` or `42` would wreck the output and tell anyone the value anyway.
pub(crate) const MIN_LENGTH: usize = 4;

/// The most a caller reads at once. Larger input is fed in pieces this size.
pub(crate) const READ_SIZE: usize = 16 * 1024;

struct Pattern {
    value: Zeroizing<Vec<u8>>,
    replacement: Vec<u8>,
}

/// A streaming matcher. Clones share the values and keep their own held bytes,
/// one per stream.
pub(crate) struct Masker {
    patterns: Arc<[Pattern]>,
    /// Which bytes start some value: the scan skips every other byte quickly.
    first: Arc<[bool; 256]>,
    held: Zeroizing<Vec<u8>>,
}

/// How a value at one position relates to the bytes there.
enum Match {
    /// No value starts here.
    None,
    /// The bytes so far are the start of some value: wait for more.
    Partial,
    /// The longest value that matches here, by index.
    Full(usize),
}

impl Masker {
    /// A matcher for every value of `MIN_LENGTH` or more characters; the names
    /// are what replaces them. With `crlf`, a value with a newline is also
    /// matched as a terminal shows it, each `\n` as `\r\n`.
    pub(crate) fn new<'a>(
        values: impl IntoIterator<Item = (&'a str, &'a [u8])>,
        crlf: bool,
    ) -> Self {
        let mut patterns = Vec::new();
        for (name, value) in values {
            if is_short(value) {
                continue;
            }
            let replacement = format!("<redacted:{name}>").into_bytes();
            let newlines = value.iter().filter(|&&byte| byte == b'\n').count();
            if crlf && newlines > 0 {
                let mut translated = Zeroizing::new(Vec::with_capacity(value.len() + newlines));
                for &byte in value {
                    if byte == b'\n' {
                        translated.push(b'\r');
                    }
                    translated.push(byte);
                }
                patterns.push(Pattern {
                    value: translated,
                    replacement: replacement.clone(),
                });
            }
            patterns.push(Pattern {
                value: Zeroizing::new(value.to_vec()),
                replacement,
            });
        }
        let mut first = [false; 256];
        for pattern in &patterns {
            first[usize::from(pattern.value[0])] = true;
        }
        let longest = patterns.iter().map(|p| p.value.len()).max().unwrap_or(0);
        Self {
            patterns: patterns.into(),
            first: Arc::new(first),
            held: Zeroizing::new(Vec::with_capacity(READ_SIZE + longest)),
        }
    }

    /// Masks `input`, the next bytes of the stream, and writes what can be
    /// shown now to `out`.
    pub(crate) fn feed(&mut self, mut input: &[u8], out: &mut impl Write) -> io::Result<()> {
        if self.patterns.is_empty() {
            return out.write_all(input);
        }
        while !input.is_empty() {
            // What is held after a scan is shorter than the longest value,
            // so there is room for at least READ_SIZE more bytes.
            let room = self.held.capacity() - self.held.len();
            let (now, later) = input.split_at(room.min(input.len()));
            self.held.extend_from_slice(now);
            let done = self.scan(out, false)?;
            self.held.drain(..done);
            input = later;
        }
        Ok(())
    }

    /// Ends the stream: writes whatever was held back, masked.
    pub(crate) fn finish(&mut self, out: &mut impl Write) -> io::Result<()> {
        let done = self.scan(out, true)?;
        debug_assert_eq!(done, self.held.len());
        self.held.clear();
        Ok(())
    }

    /// Masks `held` into `out` up to the first position that must wait for
    /// more input (none `at_end`); returns how many bytes it used up.
    fn scan(&self, out: &mut impl Write, at_end: bool) -> io::Result<usize> {
        let bytes = &self.held[..];
        let mut plain = 0;
        let mut at = 0;
        while at < bytes.len() {
            if !self.first[usize::from(bytes[at])] {
                at += 1;
                continue;
            }
            match self.match_at(&bytes[at..], at_end) {
                Match::None => at += 1,
                Match::Partial => break,
                Match::Full(index) => {
                    let pattern = &self.patterns[index];
                    out.write_all(&bytes[plain..at])?;
                    out.write_all(&pattern.replacement)?;
                    at += pattern.value.len();
                    plain = at;
                }
            }
        }
        out.write_all(&bytes[plain..at])?;
        Ok(at)
    }

    fn match_at(&self, rest: &[u8], at_end: bool) -> Match {
        let mut best: Option<usize> = None;
        for (index, pattern) in self.patterns.iter().enumerate() {
            let value = &pattern.value[..];
            if rest.len() >= value.len() {
                let longer = best.is_none_or(|b| value.len() > self.patterns[b].value.len());
                if longer && rest.starts_with(value) {
                    best = Some(index);
                }
            } else if !at_end && value.starts_with(rest) {
                // A longer value may still match here, and the longest wins.
                return Match::Partial;
            }
        }
        best.map_or(Match::None, Match::Full)
    }
}

impl Clone for Masker {
    /// Another stream's matcher: the same values, and a buffer of its own
    /// with the same room (a cloned `Vec` would have only what it holds).
    fn clone(&self) -> Self {
        let mut held = Zeroizing::new(Vec::with_capacity(self.held.capacity()));
        held.extend_from_slice(&self.held);
        Self {
            patterns: Arc::clone(&self.patterns),
            first: Arc::clone(&self.first),
            held,
        }
    }
}

/// A buffered writer whose buffer never grows and is wiped when dropped: a
/// write that does not fit goes straight on after what is buffered. What
/// passes through may hold the start of a value that never completed, or a
/// value too short to mask.
pub(crate) struct Output<W: Write> {
    buffer: Zeroizing<Vec<u8>>,
    inner: W,
}

impl<W: Write> Output<W> {
    pub(crate) fn new(inner: W) -> Self {
        Self {
            buffer: Zeroizing::new(Vec::with_capacity(READ_SIZE)),
            inner,
        }
    }

    fn write_buffer(&mut self) -> io::Result<()> {
        let written = self.inner.write_all(&self.buffer);
        self.buffer.clear();
        written
    }
}

impl<W: Write> Write for Output<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if bytes.len() > self.buffer.capacity() - self.buffer.len() {
            self.write_buffer()?;
        }
        if bytes.len() >= self.buffer.capacity() {
            return self.inner.write(bytes);
        }
        self.buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_buffer()?;
        self.inner.flush()
    }
}

/// Whether `value` is too short to mask: under `MIN_LENGTH` characters (bytes,
/// if it is not UTF-8).
pub(crate) fn is_short(value: &[u8]) -> bool {
    let length = std::str::from_utf8(value).map_or(value.len(), |text| text.chars().count());
    length < MIN_LENGTH
}

/// The matcher for `values`; `crlf`: also match each as a terminal shows a
/// line break in it (`\r\n`).
pub(crate) fn masker(values: &[(String, Secret)], crlf: bool) -> Masker {
    Masker::new(
        values
            .iter()
            .map(|(name, value)| (name.as_str(), value.expose())),
        crlf,
    )
}

/// Copies `from` to `to` through `masker` until `from` ends. If `to` fails
/// (say, `| head` has gone), `from` is dropped so that the command's next
/// write fails too, as it would had it been writing to the pipe itself.
///
/// `to` should be unbuffered (see `secret::stdout`): the buffers here are
/// of fixed size and wiped, std's are neither.
pub(crate) fn copy(mut from: impl Read, to: impl Write, mut masker: Masker) {
    let mut buffer = Zeroizing::new(vec![0u8; READ_SIZE]);
    let mut out = Output::new(to);
    loop {
        let n = match from.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        if masker
            .feed(&buffer[..n], &mut out)
            .and_then(|()| out.flush())
            .is_err()
        {
            return;
        }
    }
    let _ = masker.finish(&mut out).and_then(|()| out.flush());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masker(values: &[(&str, &str)]) -> Masker {
        Masker::new(values.iter().map(|(n, v)| (*n, v.as_bytes())), false)
    }

    /// Feeds `chunks` one by one, then ends the stream.
    fn masked(masker: &mut Masker, chunks: &[&str]) -> String {
        let mut out = Vec::new();
        for chunk in chunks {
            masker.feed(chunk.as_bytes(), &mut out).unwrap();
        }
        masker.finish(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn every_occurrence_is_replaced_by_name() {
        let mut m = masker(&[("TOKEN", "s3cr3t"), ("DB", "postgres://x")]);
        assert_eq!(
            masked(&mut m, &["a s3cr3t b s3cr3ts3cr3t postgres://x."]),
            "a <redacted:TOKEN> b <redacted:TOKEN><redacted:TOKEN> <redacted:DB>."
        );
    }

    #[test]
    fn a_value_split_across_reads_is_still_masked() {
        let mut m = masker(&[("TOKEN", "s3cr3t")]);
        assert_eq!(
            masked(&mut m, &["x s3c", "r3", "t y"]),
            "x <redacted:TOKEN> y"
        );
        for split in 0..=8 {
            let text = "<s3cr3t>";
            let (a, b) = text.split_at(split);
            assert_eq!(masked(&mut m, &[a, b]), "<<redacted:TOKEN>>", "{split}");
        }
    }

    #[test]
    fn only_a_possible_start_of_a_value_is_held_back() {
        let mut m = masker(&[("TOKEN", "s3cr3t")]);
        let mut out = Vec::new();
        m.feed(b"hello s3c", &mut out).unwrap();
        assert_eq!(out, b"hello ");
        m.feed(b"x", &mut out).unwrap();
        assert_eq!(out, b"hello s3cx");
        out.clear();
        m.feed(b"ss3cr", &mut out).unwrap();
        assert_eq!(out, b"s");
        m.finish(&mut out).unwrap();
        assert_eq!(out, b"ss3cr", "a tail that never completed is let go");
    }

    #[test]
    fn the_longest_of_overlapping_values_wins() {
        let mut m = masker(&[("SHORT", "abcd"), ("LONG", "abcdef")]);
        assert_eq!(
            masked(&mut m, &["abcdef abcdx abc", "def"]),
            "<redacted:LONG> <redacted:SHORT>x <redacted:LONG>"
        );
        assert_eq!(masked(&mut m, &["abcde"]), "<redacted:SHORT>e");
    }

    /// Leftmost-longest replacement on the whole text at once.
    fn reference(values: &[(&str, &str)], text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            let best = values
                .iter()
                .filter(|(_, v)| rest.starts_with(v) && !is_short(v.as_bytes()))
                .max_by_key(|(_, v)| v.len());
            match best {
                Some((name, value)) => {
                    out.push_str(&format!("<redacted:{name}>"));
                    rest = &rest[value.len()..];
                }
                None => {
                    out.push(c);
                    rest = &rest[c.len_utf8()..];
                }
            }
        }
        out
    }

    #[test]
    fn any_split_into_three_reads_masks_as_the_whole_text_does() {
        let values = [
            ("A", "abcd"),
            ("B", "abcdef"),
            ("C", "cdcdx"),
            ("D", "xxxx"),
        ];
        let mut m = masker(&values);
        for text in [
            "abcdefabcdxcdcdxxxxxx",
            "aabcabcdeabcdefcdcdcdx",
            "xxxabcdxxxxxabc",
        ] {
            let whole = reference(&values, text);
            assert_eq!(masked(&mut m, &[text]), whole);
            for i in 0..=text.len() {
                for j in i..=text.len() {
                    let reads = [&text[..i], &text[i..j], &text[j..]];
                    assert_eq!(masked(&mut m, &reads), whole, "{reads:?}");
                }
            }
        }
    }

    #[test]
    fn short_values_are_left_alone() {
        let mut m = masker(&[("PIN", "123"), ("EMOJI", "🎉🎉🎉")]);
        assert_eq!(masked(&mut m, &["123 🎉🎉🎉"]), "123 🎉🎉🎉");
        assert!(is_short("🎉🎉🎉".as_bytes()));
        assert!(!is_short(b"1234"));
    }

    #[test]
    fn on_a_terminal_a_newline_may_arrive_as_crlf() {
        let mut m = Masker::new([("KEY", &b"line1\nline2"[..])], true);
        assert_eq!(
            masked(&mut m, &["a line1\r\nline2 b line1\nline2"]),
            "a <redacted:KEY> b <redacted:KEY>"
        );
    }

    #[test]
    fn input_larger_than_a_read_is_masked_as_a_whole() {
        let mut m = masker(&[("TOKEN", "s3cr3t-value")]);
        for at in [READ_SIZE - 20, READ_SIZE - 6, READ_SIZE, 3 * READ_SIZE + 1] {
            let text = format!("{}s3cr3t-value{}", "a".repeat(at), "b".repeat(READ_SIZE));
            let whole = format!(
                "{}<redacted:TOKEN>{}",
                "a".repeat(at),
                "b".repeat(READ_SIZE)
            );
            assert!(masked(&mut m, &[&text]) == whole, "{at}");
        }
    }

    #[test]
    fn output_passes_large_writes_on_in_order_and_never_grows() {
        let mut output = Output::new(Vec::new());
        let big = vec![b'b'; READ_SIZE + 1];
        output.write_all(b"small ").unwrap();
        output.write_all(&big).unwrap();
        output.write_all(b" small").unwrap();
        assert_eq!(output.buffer.capacity(), READ_SIZE);
        output.flush().unwrap();
        assert_eq!(output.inner, [&b"small "[..], &big, b" small"].concat());
    }

    #[test]
    fn no_buffer_of_the_masker_leaves_an_unwiped_copy_of_a_value() {
        const FIRST_LINE: &[u8] = b"canary-2b7f51-first-line";
        // Many newlines, for the terminal form (`\r\n`) the masker builds.
        let value = Zeroizing::new([FIRST_LINE, b"\n", &b"x\n".repeat(12), b"last"].concat());
        let padding = vec![b'.'; 2 * READ_SIZE];
        let stream = Zeroizing::new(
            [
                &b"before "[..],
                &value,
                b" middle ",
                &value,
                &padding,
                &value,
            ]
            .concat(),
        );
        let expected = [
            &b"before <redacted:KEY> middle <redacted:KEY>"[..],
            &padding,
            b"<redacted:KEY>",
        ]
        .concat();
        let found = crate::secret::watch::unwiped_copies(FIRST_LINE, || {
            let mut masker = Masker::new([("KEY", &value[..])], true);
            // The stream in reads of every size: the value split across
            // many, whole in one, or with more than a read at once.
            for size in [1, 5, 300, READ_SIZE, stream.len()] {
                let mut clone = masker.clone();
                for masker in [&mut masker, &mut clone] {
                    let mut out = Output::new(Vec::new());
                    for chunk in stream.chunks(size) {
                        masker.feed(chunk, &mut out).unwrap();
                    }
                    masker.finish(&mut out).unwrap();
                    out.flush().unwrap();
                    assert!(out.inner == expected, "{size}");
                }
            }
        });
        assert_eq!(found, 0, "unwiped copies of the value were freed");
    }
}
