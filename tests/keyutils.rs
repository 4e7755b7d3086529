//! The `keyutils` store, inside `keyctl session`.
