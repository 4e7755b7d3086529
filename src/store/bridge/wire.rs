//! The bridge protocol: what the Linux build and the Windows build of
//! with-secrets say to each other over the helper's stdin and stdout.
//!
//! One JSON object per line, each way; one answer per request, in order.
//! Every string is plain ASCII JSON and every value is base64, so the lines
//! survive a console that turns `\n` into `\r\n` or text into UTF-16 (the
//! reader strips a trailing `\r`). The first exchange is `hello`, which
//! carries both sides' protocol and crate versions; the client refuses to go
//! on unless both match.
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

use serde::{Deserialize, Serialize};

/// Bumped on any change that an older peer would misread.
pub(crate) const PROTOCOL: u32 = 1;

/// This build's version, compared with the peer's in `hello`.
pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug, Serialize, Deserialize)]
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
        /// base64 of the value.
        value: String,
    },
    Delete {
        service: String,
        username: String,
    },
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WireKey {
    pub(crate) service: String,
    pub(crate) username: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WireFound {
    /// base64 of the value.
    pub(crate) value: String,
    pub(crate) matches: usize,
}

/// An answer: the fields of the request's kind, or `error`.
#[derive(Debug, Default, Serialize, Deserialize)]
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
}

/// `value` as one line of JSON in ASCII: every other character as a
/// `\uXXXX` escape (non-ASCII text only occurs inside strings, where the
/// escape means the same character), so no console code page can change it.
pub(crate) fn to_line(value: &impl Serialize) -> String {
    let json = serde_json::to_string(value).expect("plain data serializes");
    let mut line = String::with_capacity(json.len() + 1);
    for c in json.chars() {
        if c.is_ascii() {
            line.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                line.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    line.push('\n');
    line
}

/// What is wrong with a line that did not parse, without quoting it (serde's
/// message can quote the text, which may be a value).
pub(crate) fn json_error(err: &serde_json::Error) -> String {
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
            service: "dienst ✓".into(),
            username: "u".into(),
            label: "l".into(),
            value: "dg==".into(),
        });
        assert!(line.is_ascii() && line.ends_with('\n') && line.matches('\n').count() == 1);
        assert!(
            line.starts_with(r#"{"op":"set","service":"dienst \u2713""#),
            "{line}"
        );
        let back: Request = serde_json::from_str(&line).unwrap();
        assert!(matches!(back, Request::Set { service, .. } if service == "dienst ✓"));
    }
}
