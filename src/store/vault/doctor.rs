//! What `doctor` says about the vault store: the server, the token, the
//! seal and HA state.

use serde_json::Value;

use super::Vault;
use super::answers::errors;
use super::http::{Request, Response};
use crate::store::Settings;

/// For `doctor`: the server, the token's source and whether the server
/// takes it, the seal and HA state, and where entries are looked up; each
/// as (label, text). Never the token.
pub(crate) fn report(settings: &Settings) -> Vec<(&'static str, String)> {
    let mut vault = Vault::open(settings);
    let server = match vault.server() {
        Ok(server) => server,
        Err(err) => return vec![("vault:", crate::term::printable::first_line(&err))],
    };
    let mut lines = vec![(
        "vault:",
        format!(
            "{}{}",
            server.address,
            server
                .namespace
                .as_deref()
                .map(|namespace| format!(" (namespace {namespace})"))
                .unwrap_or_default()
        ),
    )];
    let source = server.token_source.clone();
    let get = |path: &str| Request {
        method: "GET",
        path: path.to_owned(),
        body: None,
    };
    let token = match vault.send_one(get("/v1/auth/token/lookup-self")) {
        Ok(answer) => match answer.status {
            200 => format!("from {source}: valid"),
            403 => format!("from {source}: NOT VALID: run `bao login` (or `vault login`)"),
            status => format!(
                "from {source}: cannot be checked: {status} {}",
                errors(&answer.body).join("; ")
            ),
        },
        Err(err) => format!(
            "from {source}: cannot be checked: {}",
            crate::term::printable::first_line(&err)
        ),
    };
    lines.push(("token:", token));
    // Every state answers 200 with these, so the body says which. The
    // health check is the root namespace's only (a namespace answers 400,
    // "operation unavailable in namespaces"), so it is asked without one.
    let health = "/v1/sys/health?standbyok=true&perfstandbyok=true&sealedcode=200&uninitcode=200";
    let namespace = vault
        .server
        .as_mut()
        .and_then(|server| server.namespace.take());
    let answer = vault.send_one(get(health));
    if let Some(server) = vault.server.as_mut() {
        server.namespace = namespace;
    }
    let state = match answer {
        Ok(answer) => health_state(&answer),
        Err(err) => crate::term::printable::first_line(&err),
    };
    lines.push(("server:", state));
    lines.push((
        "kv v2 at:",
        format!(
            "{}/{} (the manifest's [vault] mount and prefix)",
            settings.vault.mount,
            if settings.vault.prefix.is_empty() {
                "SERVICE".to_owned()
            } else {
                format!("{}/SERVICE", settings.vault.prefix)
            }
        ),
    ));
    lines
}

/// The seal and HA state, from a health answer; any other answer is told
/// as it is, never taken for a state.
fn health_state(answer: &Response) -> String {
    let health = serde_json::from_slice::<Value>(&answer.body).unwrap_or_default();
    let flag = |name: &str| health.get(name).and_then(Value::as_bool);
    match (
        answer.status,
        flag("initialized"),
        flag("sealed"),
        flag("standby"),
    ) {
        (200, Some(false), _, _) => "NOT INITIALIZED".to_owned(),
        (200, Some(true), Some(true), _) => "SEALED: unseal it (`bao operator unseal`)".to_owned(),
        (200, Some(true), Some(false), Some(true)) => "unsealed, standby node".to_owned(),
        (200, Some(true), Some(false), Some(false)) => "unsealed, active node".to_owned(),
        (status, ..) => {
            let messages = errors(&answer.body);
            format!(
                "state unknown: the server answered {status} to sys/health{}",
                if messages.is_empty() {
                    ", not a health report".to_owned()
                } else {
                    format!(": {}", messages.join("; "))
                }
            )
        }
    }
}
