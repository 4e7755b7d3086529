//! One escape for names that must be plain ASCII: keyrings.alt's, which its
//! files use for services and usernames, and which our kernel keyring
//! descriptions use too.

/// `bytes` in lower-case hex, two digits each.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// keyrings.alt's escape: `[A-Za-z0-9]` bytes as they are, every other byte
/// of the UTF-8 as `_%02X`.
pub(crate) fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() {
            out.push(byte as char);
        } else {
            out.push_str(&format!("_{byte:02X}"));
        }
    }
    out
}
