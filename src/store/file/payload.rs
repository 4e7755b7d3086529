//! The JSON document inside the file store's age file, and its
//! (de)serialization: what `file.rs` decrypts and what it encrypts.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::secret::Secret;
use crate::store::Key;

/// The version of the JSON document inside.
const FORMAT: u64 = 1;

/// The JSON inside the age file.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Document {
    #[serde(rename = "with-secrets")]
    format: u64,
    pub(super) items: Vec<Item>,
}

impl Default for Document {
    fn default() -> Self {
        Self {
            format: FORMAT,
            items: Vec::new(),
        }
    }
}

/// One entry. Its strings are wiped when it is dropped.
///
/// serde_json decodes a string with escapes (`\n`, `\"`) through its own
/// scratch buffer, which is freed without being wiped; only the `String`s here
/// are. That is as far as wiping goes with serde_json, and why we parse
/// straight into these structs rather than into a `serde_json::Value`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Item {
    service: String,
    username: String,
    #[serde(default)]
    label: String,
    /// The value, when it is UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    /// The value in base64, when it is not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value_base64: Option<String>,
}

impl Drop for Item {
    fn drop(&mut self) {
        self.value.zeroize();
        self.value_base64.zeroize();
    }
}

impl Item {
    pub(super) fn new(key: Key<'_>, label: &str, value: &Secret) -> Self {
        let (value, value_base64) = match std::str::from_utf8(value.expose()) {
            Ok(text) => (Some(text.to_owned()), None),
            Err(_) => (None, Some(BASE64.encode(value.expose()))),
        };
        Self {
            service: key.service.to_owned(),
            username: key.username.to_owned(),
            label: label.to_owned(),
            value,
            value_base64,
        }
    }

    pub(super) fn is(&self, key: Key<'_>) -> bool {
        self.service == key.service && self.username == key.username
    }

    pub(super) fn secret(&self) -> Result<Secret, String> {
        match (&self.value, &self.value_base64) {
            (Some(text), None) => Ok(Secret::new(text.as_bytes().to_vec())),
            (None, Some(encoded)) => BASE64.decode(encoded).map(Secret::new).map_err(|_| {
                format!(
                    "the value_base64 of {} / {} is not base64",
                    self.service, self.username
                )
            }),
            _ => Err(format!(
                "the item {} / {} needs exactly one of value and value_base64",
                self.service, self.username
            )),
        }
    }
}

impl Document {
    /// Parses the decrypted JSON. The error never quotes the JSON: serde's
    /// messages can (`invalid type: string "..."`), and it holds values.
    pub(super) fn parse(json: &[u8]) -> Result<Self, String> {
        let at = |err: serde_json::Error| {
            format!(
                "what it holds is not a with-secrets document (JSON, line {}, column {})",
                err.line(),
                err.column()
            )
        };
        // The format number first, so a newer file gets a clear message
        // rather than one about a field we do not know.
        #[derive(Deserialize)]
        struct Format {
            #[serde(rename = "with-secrets")]
            format: Option<u64>,
        }
        let format: Format = serde_json::from_slice(json).map_err(at)?;
        match format.format {
            Some(FORMAT) => {}
            Some(other) => {
                return Err(format!(
                    "it is in format {other} of the with-secrets file store, and this \
                     with-secrets reads format {FORMAT}; upgrade with-secrets"
                ));
            }
            None => {
                return Err(format!(
                    "what it holds is not a with-secrets document (no \"with-secrets\": {FORMAT})"
                ));
            }
        }
        serde_json::from_slice(json).map_err(at)
    }

    pub(super) fn to_json(&self) -> Zeroizing<Vec<u8>> {
        // Room for the worst case (every byte escaped as \u00XX), so the
        // buffer never grows and never leaves a copy behind in freed memory.
        let room: usize = self
            .items
            .iter()
            .map(|item| {
                let strings = [&item.service, &item.username, &item.label]
                    .into_iter()
                    .chain(&item.value)
                    .chain(&item.value_base64);
                128 + 6 * strings.map(String::len).sum::<usize>()
            })
            .sum();
        let mut json = Zeroizing::new(Vec::with_capacity(64 + room));
        let capacity = json.capacity();
        serde_json::to_writer_pretty(&mut *json, self).expect("a document always serializes");
        json.push(b'\n');
        debug_assert_eq!(json.capacity(), capacity, "the JSON buffer grew");
        json
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: Key<'static> = Key {
        service: "acme",
        username: "api",
    };

    #[test]
    fn utf8_values_are_json_strings_and_others_base64() {
        let mut document = Document::default();
        document
            .items
            .push(Item::new(KEY, "label", &Secret::from("pässword\n\"q\"")));
        let other = Key {
            service: "acme",
            username: "bytes",
        };
        document
            .items
            .push(Item::new(other, "label", &Secret::new(vec![0xff, 0, 1])));
        let json = document.to_json();
        let text = std::str::from_utf8(&json).unwrap();
        assert!(text.starts_with("{\n  \"with-secrets\": 1,\n"), "{text}");
        assert!(text.contains(r#""value": "pässword\n\"q\"""#), "{text}");
        assert!(text.contains(r#""value_base64": "/wAB""#), "{text}");
        let parsed = Document::parse(&json).unwrap();
        assert_eq!(
            parsed.items[0].secret().unwrap().expose(),
            "pässword\n\"q\"".as_bytes()
        );
        assert_eq!(parsed.items[1].secret().unwrap().expose(), [0xff, 0, 1]);
    }

    #[test]
    fn a_bad_document_is_reported_without_its_content() {
        let wrong_type = br#"{"with-secrets": 1, "items": "hunter2"}"#;
        let err = Document::parse(wrong_type).err().unwrap();
        assert!(!err.contains("hunter2"), "{err}");
        let newer = br#"{"with-secrets": 2, "items": [], "more": "hunter2"}"#;
        let err = Document::parse(newer).err().unwrap();
        assert!(
            err.contains("format 2") && !err.contains("hunter2"),
            "{err}"
        );
        let both = br#"{"with-secrets": 1, "items": [{"service": "s", "username": "u", "value": "hunter2", "value_base64": "aA"}]}"#;
        let err = Document::parse(both).unwrap().items[0]
            .secret()
            .unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
    }
}
