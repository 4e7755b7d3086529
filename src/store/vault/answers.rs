//! What the server's answers mean: the errors they are, whether to try
//! again, the secrets they hold.

use std::time::Duration;

use serde_json::Value;
use zeroize::Zeroizing;

use super::http::{Request, Response};
use super::server::Server;
use super::{Map, StoreError, Vault, server_error};

impl Vault {
    /// The error for a final answer that is not what was hoped for: tells a
    /// bad token from a policy that refuses `path`, names a sealed server or
    /// an unknown namespace.
    pub(super) fn refused(&mut self, response: &Response, service: &str) -> StoreError {
        let path = self.shown_path(service);
        let messages = errors(&response.body);
        let address = self.server.as_ref().map_or("", |s| s.address.as_str());
        let address = address.to_owned();
        match response.status {
            403 => {
                let lookup = self.send_one(Request {
                    method: "GET",
                    path: "/v1/auth/token/lookup-self".into(),
                    body: None,
                });
                let server = self.server.as_ref().expect("sent above");
                match lookup.map(|answer| answer.status) {
                    Ok(200) => server_error(format!(
                        "the token's policy refuses {path} on {address}\n  ask whoever runs \
                         the server for access to it, or check [vault] mount and prefix in the \
                         manifest"
                    )),
                    Ok(_) => server_error(format!(
                        "{address} does not accept the token from {}: it is not valid \
                         (expired, revoked or mistyped)\n  run `bao login` (or `vault login`)",
                        server.token_source
                    )),
                    Err(err) => err,
                }
            }
            503 if sealed(&messages) => server_error(format!(
                "the server at {address} is sealed\n  unseal it (`bao operator unseal`), or \
                 ask whoever runs it to"
            )),
            404 if messages.iter().any(|m| m.contains("namespace")) => {
                let namespace = self
                    .server
                    .as_ref()
                    .and_then(|s| s.namespace.clone())
                    .unwrap_or_default();
                server_error(format!(
                    "{address} has no namespace `{namespace}` (from BAO_NAMESPACE or \
                     VAULT_NAMESPACE): {}",
                    messages.join("; ")
                ))
            }
            404 if messages.iter().any(|m| m.contains("no handler for route")) => {
                server_error(format!(
                    "{address} has no secrets engine at `{}`: set [vault] mount in the \
                     manifest to your KV v2 engine's path",
                    self.settings.mount
                ))
            }
            // Not the server's JSON: something else answers at that address.
            status if serde_json::from_slice::<Value>(&response.body).is_err() => {
                server_error(format!(
                    "{address} answered {status} for {path}, and not in the server's JSON: is \
                     BAO_ADDR (or VAULT_ADDR) the server's API address?"
                ))
            }
            status => server_error(format!(
                "{address} answered {status} for {path}{}\n  `with-secrets doctor` shows the \
                 server's state and whether it takes the token",
                if messages.is_empty() {
                    String::new()
                } else {
                    format!(": {}", messages.join("; "))
                }
            )),
        }
    }
}

/// The error for a failed TLS handshake: certificate advice, unless the
/// server spoke plain HTTP.
pub(super) fn tls_error(server: &Server, reason: &str) -> StoreError {
    server_error(format!(
        "the TLS connection to {} failed: {reason}\n  check the server's \
         certificate and the CA it is checked against: {}",
        server.address,
        server.ca_source.as_deref().map_or_else(
            || "the system's; set BAO_CACERT (or VAULT_CACERT) to the PEM file \
                of your server's CA"
                .to_owned(),
            |source| source.to_owned()
        )
    ))
}

/// Why an answer is worth trying again, if it is.
pub(super) fn transient(response: &Response) -> Option<String> {
    let messages = errors(&response.body);
    let why = |what: &str| Some(format!("{what} ({})", messages.join("; ")));
    match response.status {
        429 => why("429: too many requests"),
        500 | 502 | 503 if !sealed(&messages) => why(&format!("{}", response.status)),
        // A standby that points at an active node that is gone.
        307 => Some(format!(
            "307: redirected to {}, while the cluster elects a leader",
            response.location.as_deref().unwrap_or("another node")
        )),
        400 if messages
            .iter()
            .any(|m| m.contains("Waiting for the primary")) =>
        {
            why("400: the mount is not ready yet")
        }
        _ => None,
    }
}

fn sealed(messages: &[String]) -> bool {
    messages.iter().any(|m| m.contains("sealed"))
}

pub(super) fn timed_out(server: &Server, timeout: Duration, last: Option<&str>) -> StoreError {
    let what = match last {
        None => format!("did not answer within {} s", timeout.as_secs_f32()),
        Some(why) => format!(
            "gave no usable answer within {} s (last: {why})",
            timeout.as_secs_f32()
        ),
    };
    server_error(format!(
        "{} {what}\n  check that it runs and is reachable, or give it longer with --timeout",
        server.address,
    ))
}

/// The `errors` of an error answer: the server's own words (they never
/// hold a value).
pub(super) fn errors(body: &[u8]) -> Vec<String> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|value| value.get("errors").cloned())
        .and_then(|errors| serde_json::from_value::<Vec<String>>(errors).ok())
        .unwrap_or_default()
}

/// Whether a 404's body is the server's own answer for a secret that is not
/// there: `{"errors":[]}`, or a deleted version's metadata. Anything else (a
/// web server's page, another error) is not "absent".
pub(super) fn is_no_such_secret(body: &[u8]) -> bool {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    value
        .get("errors")
        .and_then(Value::as_array)
        .is_some_and(Vec::is_empty)
        || value
            .pointer("/data/metadata")
            .is_some_and(Value::is_object)
}

/// A KV v2 read: its `data.data` and `data.metadata.version`.
pub(super) fn parse_secret(body: &[u8]) -> Result<(Option<Map>, u64), &'static str> {
    let value: Zeroizing<Vec<u8>> = Zeroizing::new(body.to_vec());
    let mut parsed: Value = serde_json::from_slice(&value).map_err(|_| "not JSON")?;
    let version = parsed
        .pointer("/data/metadata/version")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let data = match parsed.pointer_mut("/data/data").map(Value::take) {
        Some(Value::Object(map)) => Some(map.into_iter().collect()),
        // A deleted version reads as null data.
        Some(Value::Null) => None,
        _ => return Err("no data.data object (is the mount KV version 2?)"),
    };
    Ok((data, version))
}

pub(super) fn parse_version(body: &[u8]) -> Option<u64> {
    serde_json::from_slice::<Value>(body)
        .ok()?
        .pointer("/data/metadata/version")?
        .as_u64()
}

/// A value as the command gets it: a string as it is, anything else (a
/// number, a flag, an object) as its JSON.
pub(super) fn value_bytes(value: &Value) -> Vec<u8> {
    match value {
        Value::String(text) => text.as_bytes().to_vec(),
        other => other.to_string().into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kv_v2_read_gives_its_data_and_version() {
        let body = br#"{"data":{"data":{"a":"1","n":2},"metadata":{"version":3}}}"#;
        let (data, version) = parse_secret(body).unwrap();
        let data = data.unwrap();
        assert_eq!(version, 3);
        assert_eq!(value_bytes(&data["a"]), b"1");
        assert_eq!(value_bytes(&data["n"]), b"2");
        let deleted = br#"{"data":{"data":null,"metadata":{"version":4}}}"#;
        assert_eq!(parse_secret(deleted).unwrap(), (None, 4));
        assert!(parse_secret(br#"{"data":{"a":"1"}}"#).is_err());
    }

    #[test]
    fn only_what_an_ha_cluster_says_in_passing_is_retried() {
        let answer = |status, body: &str| Response {
            status,
            location: None,
            body: Zeroizing::new(body.as_bytes().to_vec()),
        };
        for (status, body) in [
            (500, r#"{"errors":["active cluster node not found"]}"#),
            (503, r#"{"errors":["something else"]}"#),
            (429, "{}"),
            (307, ""),
            (
                400,
                r#"{"errors":["Waiting for the primary to upgrade from non-versioned to versioned data. Please try again."]}"#,
            ),
        ] {
            assert!(
                transient(&answer(status, body)).is_some(),
                "{status} {body}"
            );
        }
        for (status, body) in [
            (503, r#"{"errors":["Vault is sealed"]}"#),
            (403, r#"{"errors":["permission denied"]}"#),
            (404, r#"{"errors":[]}"#),
            (
                400,
                r#"{"errors":["check-and-set parameter did not match the current version"]}"#,
            ),
        ] {
            assert!(
                transient(&answer(status, body)).is_none(),
                "{status} {body}"
            );
        }
    }
}
