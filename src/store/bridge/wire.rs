//! The bridge protocol: what the Linux build and the Windows build of
//! with-secrets say to each other over the helper's stdin and stdout.
//!
//! One JSON object per line, each way; one answer per request, in order.
//! Every line is ASCII (other characters are `\uXXXX` escapes) and every
//! value is base64, so no code page can change them; the reader strips a
//! trailing `\r`, in case something on the way ends lines with `\r\n`.
//! Lines are read as bytes, never as UTF-16: the helper's stdout is a pipe,
//! which Windows passes on as written (only a console is written in
//! UTF-16). The first exchange is `hello`, which carries both sides'
//! protocol and crate versions; the client refuses to go on unless both
//! match.
//!
//! Values are held in [`WireValue`], wiped when dropped, and lines are
//! written into and read from wiped buffers, so no form of a value (its
//! bytes, its base64, the line that carries it) is left in freed memory.
//! One exception, which our own peer never causes: a value whose base64 a
//! peer wrote with JSON escapes (`\u0041` for `A`; base64 needs none, and
//! our writer makes none) is unescaped by serde_json in a scratch buffer of
//! its own, which is not wiped.
//!
//! ```text
//! -> {"op":"hello","protocol":1,"version":"0.1.0"}
//! <- {"protocol":1,"version":"0.1.0","store":"windows"}
//! -> {"op":"get","keys":[{"service":"acme","username":"ci"}]}
//! <- {"found":[{"value":"c2VjcmV0","matches":1}]}          (null: no item)
//! -> {"op":"set","service":"acme","username":"ci","label":"…","value":"c2VjcmV0"}
//! <- {}
//! -> {"op":"delete","service":"acme","username":"ci"}
//! <- {"deleted":1}
//! <- {"error":"the store's message"}                       (any request)
//! ```

use std::io;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

use crate::secret::Secret;

/// Bumped on any change that an older peer would misread.
pub(crate) const PROTOCOL: u32 = 1;

/// This build's version, compared with the peer's in `hello`.
pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub(crate) enum Request {
    Hello {
        protocol: u32,
        version: String,
    },
    Get {
        keys: Vec<WireKey>,
    },
    Set {
        service: String,
        username: String,
        label: String,
        value: WireValue,
    },
    Delete {
        service: String,
        username: String,
    },
}

#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WireKey {
    pub(crate) service: String,
    pub(crate) username: String,
}

#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WireFound {
    pub(crate) value: WireValue,
    pub(crate) matches: usize,
}

/// An answer: the fields of the request's kind, or `error`.
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Response {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) protocol: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) version: Option<String>,
    /// The store the helper serves from, for messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) store: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) found: Option<Vec<Option<WireFound>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) deleted: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
    /// With `error`: what the failure means (`Class::name`), so that the
    /// other side keeps a refusal, a locked store and a timeout apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) class: Option<String>,
    /// In the agent's answer to hello: the manifests whose entries it serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) serves: Option<Vec<String>>,
    /// In the agent's answer to hello: whether it lets runs write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) writes: Option<bool>,
}

/// The request that looks `keys` up.
#[cfg(unix)]
pub(crate) fn get_request(keys: &[crate::store::Key<'_>]) -> Request {
    Request::Get {
        keys: keys
            .iter()
            .map(|key| WireKey {
                service: key.service.to_owned(),
                username: key.username.to_owned(),
            })
            .collect(),
    }
}

/// The request that stores `value` for `key`.
#[cfg(unix)]
pub(crate) fn set_request(key: crate::store::Key<'_>, label: &str, value: &Secret) -> Request {
    Request::Set {
        service: key.service.to_owned(),
        username: key.username.to_owned(),
        label: label.to_owned(),
        value: WireValue::encode(value.expose()),
    }
}

/// The request that deletes `key`.
#[cfg(unix)]
pub(crate) fn delete_request(key: crate::store::Key<'_>) -> Request {
    Request::Delete {
        service: key.service.to_owned(),
        username: key.username.to_owned(),
    }
}

/// The values in an answer to a lookup of `keys` keys, one slot each;
/// `Err` says what makes no sense in it.
#[cfg(unix)]
pub(crate) fn found_values(
    answer: Response,
    keys: usize,
) -> Result<Vec<Option<crate::store::Found>>, String> {
    let found = answer
        .found
        .ok_or("its answer to a lookup has no `found`")?;
    if found.len() != keys {
        return Err(format!(
            "it answered {} values for {keys} keys",
            found.len()
        ));
    }
    found
        .into_iter()
        .map(|slot| {
            slot.map(|found| match found.value.decode() {
                Some(secret) => Ok(crate::store::Found {
                    secret,
                    matches: found.matches,
                    cached: None,
                }),
                None => Err("it sent a value that is not base64".to_owned()),
            })
            .transpose()
        })
        .collect()
}

/// A value on the wire: its base64, wiped when dropped, whichever way the
/// value goes and however far a line got parsed.
#[derive(PartialEq, Eq)]
pub(crate) struct WireValue(Zeroizing<String>);

impl WireValue {
    /// `bytes` in base64, written straight into a buffer of the right size,
    /// so no copy of it is left behind.
    pub(crate) fn encode(bytes: &[u8]) -> Self {
        let len = base64::encoded_len(bytes.len(), true).expect("a value's base64 fits in memory");
        let mut text = Zeroizing::new(vec![0u8; len]);
        let written = BASE64
            .encode_slice(bytes, &mut text[..])
            .expect("sized by encoded_len");
        debug_assert_eq!(written, len);
        let text = String::from_utf8(std::mem::take(&mut *text)).expect("base64 is ASCII");
        Self(Zeroizing::new(text))
    }

    /// The value, or `None` where this is not base64 (whose bytes, as far
    /// as they were decoded, are wiped too).
    pub(crate) fn decode(&self) -> Option<Secret> {
        let estimate = base64::decoded_len_estimate(self.0.len());
        let mut bytes = Zeroizing::new(vec![0u8; estimate]);
        let len = BASE64
            .decode_slice(self.0.as_bytes(), &mut bytes[..])
            .ok()?;
        bytes.truncate(len);
        Some(Secret::new(std::mem::take(&mut *bytes)))
    }
}

impl std::fmt::Debug for WireValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for WireValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for WireValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // serde_json makes a string without escapes (base64 has none) in a
        // block of its exact size; with escapes, it goes through a scratch
        // buffer of its own (see `Secret`).
        String::deserialize(deserializer).map(|text| Self(Zeroizing::new(text)))
    }
}

/// `value` as one line of JSON in ASCII, ending in `\n`, in a buffer that is
/// wiped when dropped: each non-ASCII character is a `\uXXXX` escape
/// (non-ASCII text only occurs inside strings, where the escape means the
/// same character), so no code page can change it. Written in place:
/// serde_json's own `to_string` grows a `String`, and frees it, unwiped,
/// with the value's base64 in it.
pub(crate) fn to_line(value: &impl Serialize) -> Zeroizing<Vec<u8>> {
    let mut line = Zeroizing::new(Vec::with_capacity(1024));
    let mut serializer = serde_json::Serializer::with_formatter(Wiped(&mut line), Ascii);
    value
        .serialize(&mut serializer)
        .expect("plain data serializes");
    crate::secret::append_wiped(&mut line, b"\n");
    line
}

/// A writer into a wiped buffer, which it grows as `append_wiped` does.
struct Wiped<'a>(&'a mut Zeroizing<Vec<u8>>);

impl io::Write for Wiped<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        crate::secret::append_wiped(self.0, bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// serde_json's compact format, with every non-ASCII character in a string
/// written as `\uXXXX` escapes (two, for one beyond the BMP).
struct Ascii;

impl serde_json::ser::Formatter for Ascii {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut rest = fragment;
        while let Some(at) = rest.find(|c: char| !c.is_ascii()) {
            writer.write_all(&rest.as_bytes()[..at])?;
            let c = rest[at..].chars().next().expect("found at `at`");
            for unit in c.encode_utf16(&mut [0u16; 2]) {
                write!(writer, "\\u{unit:04x}")?;
            }
            rest = &rest[at + c.len_utf8()..];
        }
        writer.write_all(rest.as_bytes())
    }
}

/// The longest line either end reads, without its line end: far more than
/// any request or answer needs (a Credential Manager value is at most 2,560
/// bytes), and a bound on what a peer that never ends its line can make us
/// hold.
pub(crate) const LINE_MAX: usize = 16 << 20;

/// A line longer than [`LINE_MAX`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TooLong;

impl std::fmt::Display for TooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a line longer than {} MiB", LINE_MAX >> 20)
    }
}

/// What has been read from a pipe but not yet taken as a line, in a buffer
/// that is wiped when dropped and as it grows.
pub(crate) struct Lines {
    buffer: Zeroizing<Vec<u8>>,
    /// How much of `buffer` is known to hold no `\n`, so that each byte is
    /// looked at once however long a line takes to come.
    scanned: usize,
}

impl Lines {
    pub(crate) fn new() -> Self {
        Self {
            buffer: Zeroizing::new(Vec::with_capacity(64 * 1024)),
            scanned: 0,
        }
    }

    /// Adds what was read.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        crate::secret::append_wiped(&mut self.buffer, bytes);
    }

    /// Takes the first whole line, without its `\n` or `\r\n`; `Ok(None)`
    /// while none has come, `Err` once it is longer than [`LINE_MAX`]. What
    /// is left moves to the front of the same block.
    pub(crate) fn take(&mut self) -> Result<Option<Zeroizing<Vec<u8>>>, TooLong> {
        let Some(found) = self.buffer[self.scanned..]
            .iter()
            .position(|&byte| byte == b'\n')
        else {
            self.scanned = self.buffer.len();
            return if self.buffer.len() > LINE_MAX {
                Err(TooLong)
            } else {
                Ok(None)
            };
        };
        let end = self.scanned + found;
        self.scanned = 0;
        let mut line = Zeroizing::new(self.buffer[..end].to_vec());
        self.buffer.drain(..=end);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if line.len() > LINE_MAX {
            return Err(TooLong);
        }
        Ok(Some(line))
    }

    /// What is left, not yet a line.
    #[cfg(test)]
    fn rest(&self) -> &[u8] {
        &self.buffer
    }
}

/// A request, as the helper reads one line; `Err` is the answer's `error`.
pub(crate) fn read_request(line: &[u8]) -> Result<Request, String> {
    serde_json::from_slice(line).map_err(|err| format!("not a request: {}", json_error(&err)))
}

/// An answer, as the client reads one line; `Err` says why it is none.
pub(crate) fn read_response(line: &[u8]) -> Result<Response, String> {
    serde_json::from_slice(line).map_err(|err| {
        format!(
            "it answered something that is not the bridge protocol ({}): is it with-secrets?",
            json_error(&err)
        )
    })
}

/// One line as each end of the bridge reads it, for the fuzzer.
#[doc(hidden)]
#[derive(Debug)]
pub struct BridgeLine {
    /// The line, without its line end.
    pub line: Vec<u8>,
    /// Read by the Linux end as an answer: the line it would write for the
    /// same answer, every value decoded and encoded anew, or why it is none.
    pub answer: Result<Vec<u8>, String>,
    /// Read by the helper as a request, the same way.
    pub request: Result<Vec<u8>, String>,
}

/// Splits `bytes` into lines as both ends do (what follows the last `\n`
/// waits for more, as it would on the pipe; a line longer than [`LINE_MAX`]
/// ends the reading) and reads each line as both an answer and a request,
/// decoding every value as the reader does.
pub(crate) fn read_lines(bytes: &[u8]) -> Vec<BridgeLine> {
    let mut reader = Lines::new();
    reader.push(bytes);
    let mut lines = Vec::new();
    while let Ok(Some(line)) = reader.take() {
        let answer = read_response(&line).and_then(|mut response| {
            for found in response.found.iter_mut().flatten().flatten() {
                found.value = anew(&found.value).ok_or("it sent a value that is not base64")?;
            }
            Ok(to_line(&response).to_vec())
        });
        let request = read_request(&line).and_then(|mut request| {
            if let Request::Set { value, .. } = &mut request {
                *value = anew(value).ok_or("not a request: its value is not base64")?;
            }
            Ok(to_line(&request).to_vec())
        });
        lines.push(BridgeLine {
            line: line.to_vec(),
            answer,
            request,
        });
    }
    lines
}

/// `value` decoded and encoded again.
fn anew(value: &WireValue) -> Option<WireValue> {
    value
        .decode()
        .map(|secret| WireValue::encode(secret.expose()))
}

/// What is wrong with a line that did not parse, without quoting it (serde's
/// message can quote the text, which may be a value).
fn json_error(err: &serde_json::Error) -> String {
    let what = match err.classify() {
        serde_json::error::Category::Io => "cannot be read",
        serde_json::error::Category::Syntax => "is not JSON",
        serde_json::error::Category::Data => "has unexpected fields",
        serde_json::error::Category::Eof => "ends early",
    };
    format!("the line {what} (column {})", err.column())
}

/// Which build is older, by the crate versions, so a message can say which
/// one to update: `Less` when `ours` is older. Versions that do not parse
/// compare as equal.
#[cfg_attr(
    not(target_os = "linux"),
    allow(dead_code, reason = "only the client, on Linux, compares")
)]
pub(crate) fn compare_versions(ours: &str, theirs: &str) -> std::cmp::Ordering {
    let parse = |text: &str| -> Option<Vec<u64>> {
        text.split(['-', '+'])
            .next()?
            .split('.')
            .map(|part| part.parse().ok())
            .collect()
    };
    match (parse(ours), parse(theirs)) {
        (Some(ours), Some(theirs)) => ours.cmp(&theirs),
        _ => std::cmp::Ordering::Equal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering;

    #[test]
    fn the_older_build_is_the_lower_version() {
        assert_eq!(compare_versions("0.1.0", "0.2.0"), Ordering::Less);
        assert_eq!(compare_versions("0.10.0", "0.9.1"), Ordering::Greater);
        assert_eq!(compare_versions("1.0.0-rc1", "1.0.0"), Ordering::Equal);
    }

    #[test]
    fn requests_are_one_line_of_ascii() {
        let line = to_line(&Request::Set {
            service: "dienst ✓ 𝄞".into(),
            username: "u".into(),
            label: "l".into(),
            value: WireValue::encode(b"v"),
        });
        let text = std::str::from_utf8(&line).expect("UTF-8");
        assert!(text.is_ascii() && text.ends_with('\n') && text.matches('\n').count() == 1);
        assert!(
            text.starts_with(r#"{"op":"set","service":"dienst \u2713 \ud834\udd1e""#),
            "{text}"
        );
        let back: Request = serde_json::from_slice(&line).unwrap();
        assert!(matches!(back, Request::Set { service, .. } if service == "dienst ✓ 𝄞"));
    }

    #[test]
    fn values_go_both_ways_and_a_value_that_is_not_base64_is_none() {
        let value = WireValue::encode("wert ✓".as_bytes());
        assert_eq!(&*value.0, "d2VydCDinJM=");
        assert_eq!(value.decode().unwrap().expose(), "wert ✓".as_bytes());
        assert_eq!(WireValue::encode(b"").decode().unwrap().expose(), b"");
        assert!(WireValue(Zeroizing::new("d2V!".into())).decode().is_none());
        assert_eq!(format!("{value:?}"), "***");
    }

    #[test]
    fn lines_are_taken_whole_without_their_line_end() {
        let mut lines = Lines::new();
        lines.push(b"one\r\ntw");
        let take = |lines: &mut Lines| lines.take().map(|line| line.map(|line| line.to_vec()));
        assert_eq!(take(&mut lines), Ok(Some(b"one".to_vec())));
        assert_eq!(take(&mut lines), Ok(None));
        lines.push(b"o\nthr");
        assert_eq!(take(&mut lines), Ok(Some(b"two".to_vec())));
        assert_eq!(take(&mut lines), Ok(None));
        assert_eq!(lines.rest(), b"thr");
    }

    #[test]
    fn a_line_may_be_up_to_line_max_long() {
        let mut lines = Lines::new();
        lines.push(&vec![b'x'; LINE_MAX]);
        assert_eq!(lines.take(), Ok(None));
        lines.push(b"\r\n");
        assert_eq!(lines.take().unwrap().unwrap().len(), LINE_MAX);
        lines.push(&vec![b'x'; LINE_MAX + 1]);
        assert_eq!(lines.take(), Err(TooLong));
        lines.push(b"\n");
        assert_eq!(lines.take(), Err(TooLong));
        assert_eq!(TooLong.to_string(), "a line longer than 16 MiB");
    }

    /// A value for the watch to look for, in its three forms: its bytes,
    /// its base64 and (as `found` would carry it) its line.
    const CANARY: &[u8] = b"wire-canary-7d21c9 value";
    const CANARY_BASE64: &[u8] = b"d2lyZS1jYW5hcnktN2QyMWM5IHZhbHVl";

    #[test]
    fn a_line_leaves_no_unwiped_copy_of_a_value_in_any_form() {
        assert_eq!(BASE64.encode(CANARY).as_bytes(), CANARY_BASE64);
        let sent = |secret: &[u8]| {
            let request = Request::Set {
                service: "s".into(),
                username: "u".into(),
                label: "l".into(),
                value: WireValue::encode(secret),
            };
            let line = to_line(&request);
            drop(request);
            line
        };
        // A request and an answer, written and read back; the answer's line
        // outgrows its first block after the value is in it.
        let padding = [b'x'; 1500];
        let found = crate::secret::watch::unwiped_copies(CANARY_BASE64, || {
            let line = sent(CANARY);
            assert!(
                line.windows(CANARY_BASE64.len())
                    .any(|w| w == CANARY_BASE64)
            );
            let response = Response {
                found: Some(vec![
                    Some(WireFound {
                        value: WireValue::encode(CANARY),
                        matches: 1,
                    }),
                    Some(WireFound {
                        value: WireValue::encode(&padding),
                        matches: 1,
                    }),
                ]),
                ..Response::default()
            };
            let line = to_line(&response);
            drop(response);
            let back: Response = serde_json::from_slice(&line).unwrap();
            drop(line);
            let values: Vec<Secret> = back
                .found
                .iter()
                .flatten()
                .flatten()
                .map(|found| found.value.decode().unwrap())
                .collect();
            assert_eq!(values[0].expose(), CANARY);
        });
        assert_eq!(found, 0, "unwiped copies of the value's base64");
        let found = crate::secret::watch::unwiped_copies(CANARY, || {
            let line = sent(CANARY);
            let back: Request = serde_json::from_slice(&line).unwrap();
            let Request::Set { value, .. } = back else {
                panic!("not a set")
            };
            assert_eq!(value.decode().unwrap().expose(), CANARY);
        });
        assert_eq!(found, 0, "unwiped copies of the value");
    }
}
