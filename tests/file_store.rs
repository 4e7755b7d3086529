//! The `file` store: an age-encrypted file, end to end.
