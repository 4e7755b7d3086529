//! The server and how to reach it: its address, token, namespace and TLS
//! set-up, from the environment.

use std::path::PathBuf;
use std::sync::Arc;

use zeroize::Zeroizing;

use super::http::Endpoint;
use super::{NAME, StoreError, server_error};
use crate::store::Common;

/// The variables each setting is read from, in order.
const ADDRESS: [&str; 2] = ["BAO_ADDR", "VAULT_ADDR"];
const TOKEN: [&str; 2] = ["BAO_TOKEN", "VAULT_TOKEN"];
const CACERT: [&str; 2] = ["BAO_CACERT", "VAULT_CACERT"];
const NAMESPACE: [&str; 2] = ["BAO_NAMESPACE", "VAULT_NAMESPACE"];
const TOKEN_FILE: &str = ".vault-token";

/// The first of `names` that is set and not empty, with its name.
fn first_set(names: [&'static str; 2]) -> Option<(&'static str, String)> {
    names.into_iter().find_map(|name| {
        std::env::var(name)
            .ok()
            .filter(|value| !value.trim().is_empty())
            .map(|value| (name, value.trim().to_owned()))
    })
}

/// The server and how to talk to it.
pub(crate) struct Server {
    pub(crate) address: String,
    /// The variable the address came from.
    pub(super) address_variable: &'static str,
    pub(super) endpoint: Endpoint,
    pub(super) token: Zeroizing<String>,
    /// Where the token came from, for messages: a variable or the file.
    pub(crate) token_source: String,
    pub(crate) namespace: Option<String>,
    /// Where the CA came from, if a variable named one.
    pub(crate) ca_source: Option<String>,
    pub(super) tls: Option<Arc<rustls::ClientConfig>>,
}

impl Server {
    /// From the environment. No address is no store here (`means_absent`);
    /// anything else missing or wrong is an error.
    pub(crate) fn from_env() -> Result<Self, StoreError> {
        let Some((address_variable, address)) = first_set(ADDRESS) else {
            return Err(StoreError::from(Common::Unavailable {
                store: NAME,
                reason: "no server address: set BAO_ADDR (or VAULT_ADDR) to your server's, \
                         e.g. https://vault.example.com:8200"
                    .into(),
            }));
        };
        let endpoint = Endpoint::parse(&address)
            .map_err(|reason| server_error(format!("{address_variable}: {reason}")))?;
        let (token, token_source) = match first_set(TOKEN) {
            Some((variable, token)) => (Zeroizing::new(token), variable.to_owned()),
            None => {
                let path = token_file().ok_or_else(|| no_token(&address))?;
                match std::fs::read_to_string(&path) {
                    Ok(text) if !text.trim().is_empty() => (
                        Zeroizing::new(text.trim().to_owned()),
                        crate::term::printable::printable_path(&path),
                    ),
                    _ => return Err(no_token(&address)),
                }
            }
        };
        let namespace = first_set(NAMESPACE).map(|(_, namespace)| namespace);
        let (tls, ca_source) = if endpoint.tls {
            let (config, source) = tls_config()?;
            (Some(config), source)
        } else {
            (None, None)
        };
        Ok(Self {
            address,
            address_variable,
            endpoint,
            token,
            token_source,
            namespace,
            ca_source,
            tls,
        })
    }
}

/// What tells this server's values from any other's, for the session cache
/// (`Store::cache_identity`): the address, namespace and token as the runs
/// would use them, and where on the server (`mount`, `prefix`). The token is
/// in it, so that a run with another token (another person, or another
/// policy) is never served what this one read. Reads the environment and
/// the token file only; `None` where there is no address or no token (no
/// store to keep values of).
pub(crate) fn identity(settings: &super::Settings) -> Option<Zeroizing<String>> {
    let (_, address) = first_set(ADDRESS)?;
    let token = match first_set(TOKEN) {
        Some((_, token)) => Zeroizing::new(token),
        None => Zeroizing::new(
            std::fs::read_to_string(token_file()?)
                .ok()?
                .trim()
                .to_owned(),
        ),
    };
    if token.is_empty() {
        return None;
    }
    let namespace = first_set(NAMESPACE).map(|(_, namespace)| namespace);
    let mut identity = Zeroizing::new(String::new());
    for part in [
        "vault",
        &address,
        namespace.as_deref().unwrap_or(""),
        &settings.mount,
        &settings.prefix,
        &token,
    ] {
        identity.push_str(part);
        identity.push('\0');
    }
    Some(identity)
}

fn token_file() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|home| !home.is_empty())
        .map(|home| PathBuf::from(home).join(TOKEN_FILE))
}

fn no_token(address: &str) -> StoreError {
    server_error(format!(
        "no token for {address}: run `bao login` (or `vault login`), which writes \
         ~/.vault-token, or set BAO_TOKEN (or VAULT_TOKEN)"
    ))
}

/// A verified TLS set-up: the CA a variable names, else the system's roots.
fn tls_config() -> Result<(Arc<rustls::ClientConfig>, Option<String>), StoreError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let source = match first_set(CACERT) {
        Some((variable, path)) => {
            let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&path)
                .and_then(|certificates| certificates.collect())
                .map_err(|err| {
                    server_error(format!(
                        "{variable} names {path}, which is not a readable PEM certificate: {err}"
                    ))
                })?;
            let (added, _) = roots.add_parsable_certificates(certificates);
            if added == 0 {
                return Err(server_error(format!(
                    "{variable} names {path}, which holds no CA certificate"
                )));
            }
            Some(format!("{variable}={path}"))
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            None
        }
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| server_error(format!("TLS: {err}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok((Arc::new(config), source))
}
