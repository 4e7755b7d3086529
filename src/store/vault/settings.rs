//! The vault store's settings, which the manifest's `[vault]` table parses
//! into: the manifest sits above the stores and fills in their types.

/// Where entries live on the server: the manifest's `[vault]` table. An
/// entry `{ service = S, username = U }` is the key `U` of the KV v2 secret
/// `PREFIX/S` in the secrets engine at `MOUNT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The KV v2 engine's mount path, without slashes around it.
    pub mount: String,
    /// Put before every service, without slashes around it; may be empty.
    pub prefix: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            mount: "secret".to_owned(),
            prefix: String::new(),
        }
    }
}
