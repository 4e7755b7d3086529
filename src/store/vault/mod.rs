//! The `vault` store (also `openbao`): a HashiCorp Vault or OpenBao server's
//! KV v2 secrets engine, over its HTTP API.
//!
//! An entry `{ service = S, username = U }` is the key `U` of the secret at
//! `PREFIX/S` in the engine mounted at `MOUNT` (the manifest's `[vault]`
//! table; `secret` and no prefix by default). The server, the token, the CA
//! and the namespace come from the variables the `bao` and `vault` CLIs read,
//! `BAO_*` first, then `VAULT_*`, and the token last from `~/.vault-token`.
//! TLS is always verified: against `BAO_CACERT` / `VAULT_CACERT` when one is
//! set (that CA only, as the CLIs do), else the system's roots.
//!
//! Reads are one request per distinct path, all written at once on one
//! kept-alive connection, the answers read back in order. `set` patches the
//! one key (`PATCH`, JSON merge patch) where the token's policy allows it,
//! else reads and writes back with check-and-set, again on a conflict; the
//! other keys of the secret are kept either way.
//!
//! Errors say which of the distinct failures it is: no address (the only one
//! that lets the environment stand in), no token or a token the server does
//! not accept (found with `auth/token/lookup-self`), a policy that refuses
//! the path, a sealed server, nothing listening, a TLS failure, an unknown
//! namespace, no answer by the deadline. What an HA cluster says while its
//! leader changes (connection refused or reset, 500/502/503 that are not
//! "sealed", 429, 307 to a dead node, 400 "Waiting for the primary to
//! upgrade") is retried with backoff until the deadline; a 403 never is.

mod answers;
mod doctor;
pub(crate) mod http;
mod server;
mod settings;

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use serde_json::Value;
use zeroize::Zeroizing;

use self::answers::{
    errors, is_no_such_secret, parse_secret, parse_version, timed_out, tls_error, transient,
    value_bytes,
};
pub(crate) use self::doctor::report;
use self::http::{Connection, Failure, Request, Response};
use self::server::Server;
pub use self::settings::Settings;
use super::{Class, Common, Fault, Found, Key, Store, StoreError};
use crate::secret::Secret;

const NAME: &str = "vault";

/// The first backoff between retries, doubled each time up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// How long connections may be refused before nothing listens, for sure.
const REFUSED_FOR: Duration = Duration::from_secs(1);

/// The store.
pub(crate) struct Vault {
    settings: Settings,
    timeout: Duration,
    server: Option<Server>,
    connection: Option<Connection>,
    /// Whether the server closes the connection after each answer, so
    /// that a batch goes one request per connection.
    one_at_a_time: bool,
    /// Whether the mount is known not to be KV version 1.
    mount_checked: bool,
    /// When the store call under way must be done by (see `bounded`).
    deadline: Option<Instant>,
}

impl Vault {
    /// Reads nothing and connects to nothing: that waits until it is used.
    pub(crate) fn open(settings: &crate::store::Settings) -> Self {
        Self {
            settings: settings.vault.clone(),
            timeout: settings.timeout,
            server: None,
            connection: None,
            one_at_a_time: false,
            mount_checked: false,
            deadline: None,
        }
    }

    /// Runs one store call with one deadline, `--timeout` from now, for
    /// all it sends: a `set` asks the mount's version, patches, or reads
    /// and writes with check-and-set, and all of it together is bounded.
    fn bounded<T>(
        &mut self,
        call: impl FnOnce(&mut Self) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.deadline = Some(Instant::now() + self.timeout);
        let result = call(self);
        self.deadline = None;
        result
    }

    /// The deadline of the store call under way; outside one (`doctor`'s
    /// questions), `--timeout` from now.
    fn deadline(&self) -> Instant {
        self.deadline
            .unwrap_or_else(|| Instant::now() + self.timeout)
    }

    fn server(&mut self) -> Result<&Server, StoreError> {
        if self.server.is_none() {
            let server = Server::from_env()?;
            crate::explain!(
                "vault at {}{} (token from {})",
                server.address,
                server
                    .namespace
                    .as_deref()
                    .map(|namespace| format!(", namespace {namespace}"))
                    .unwrap_or_default(),
                server.token_source
            );
            self.server = Some(server);
        }
        Ok(self.server.as_ref().expect("set above"))
    }

    /// What the CLIs ask to learn a mount's KV version.
    fn mount_query(&self) -> Request {
        Request {
            method: "GET",
            path: format!(
                "/v1/sys/internal/ui/mounts/{}",
                encode_path(&self.settings.mount)
            ),
            body: None,
        }
    }

    /// Refuses a KV version 1 mount, by its answer to `mount_query`: its
    /// secrets are at other paths, without versions or check-and-set. The
    /// server's own error in its JSON (a refusal, no such mount, sealed)
    /// leaves it to the reads and writes to tell, as they will: the server
    /// answers the query for any token with a capability on a path under
    /// the mount, no policy on `sys/` needed
    /// (`vault::a_token_that_may_write_a_kv1_mount_learns_its_version_and_writes_nothing`),
    /// and refuses it only to a token whose reads and writes there it
    /// refuses too. Any other answer (a proxy's page, a 200 that is not the
    /// server's JSON) means the version cannot be known, and the mount might
    /// be version 1, whose secrets are read elsewhere and written as stray
    /// ones: an error, never a guess.
    fn check_mount(&mut self, answer: &Response) -> Result<(), StoreError> {
        let mount = &self.settings.mount;
        let server_json = serde_json::from_slice::<Value>(&answer.body).ok();
        let unknown = || {
            server_error(format!(
                "cannot learn the KV version of the secrets engine at `{mount}`: \
                 sys/internal/ui/mounts/{mount} answered {}, not with the server's JSON\n  \
                 whatever is in front of the server (a proxy, a gateway) must let that path \
                 through, as the bao and vault CLIs ask it too",
                answer.status
            ))
        };
        let Some(value) = server_json else {
            return Err(unknown());
        };
        if answer.status != 200 {
            // The server's own error (its JSON `errors`): a sealed server, a
            // refusal, no such mount; the reads and writes get the same.
            return if value.get("errors").is_some_and(Value::is_array) {
                Ok(())
            } else {
                Err(unknown())
            };
        }
        let Some(kind) = value.pointer("/data/type").and_then(Value::as_str) else {
            return Err(unknown());
        };
        let version = value
            .pointer("/data/options/version")
            .and_then(Value::as_str)
            .unwrap_or("1");
        if matches!(kind, "kv" | "generic") && version == "1" {
            return Err(server_error(format!(
                "the secrets engine at `{mount}` is KV version 1, and with-secrets reads and \
                 writes KV version 2 (versions, check-and-set)\n  upgrade it in place with \
                 `bao kv enable-versioning {mount}` (or `vault kv enable-versioning {mount}`), \
                 or set [vault] mount in the manifest to a KV version 2 engine"
            )));
        }
        self.mount_checked = true;
        Ok(())
    }

    /// Before a write: the mount must not be KV version 1, whose secrets
    /// are elsewhere (a write under `MOUNT/data/` would be a stray secret).
    fn ensure_kv2(&mut self) -> Result<(), StoreError> {
        if !self.mount_checked {
            let answer = self.send_one(self.mount_query())?;
            self.check_mount(&answer)?;
        }
        Ok(())
    }

    /// The secret's path below the mount: `PREFIX/SERVICE`.
    fn secret_path(&self, service: &str) -> String {
        if self.settings.prefix.is_empty() {
            service.to_owned()
        } else {
            format!("{}/{service}", self.settings.prefix)
        }
    }

    /// The API path of a secret's data.
    fn data_path(&self, service: &str) -> String {
        format!(
            "/v1/{}/data/{}",
            encode_path(&self.settings.mount),
            encode_path(&self.secret_path(service))
        )
    }

    /// Sends `requests` as one batch and returns their answers, retrying
    /// what an HA cluster says while its leader changes, until the deadline.
    fn send(&mut self, requests: Vec<Request>) -> Result<Vec<Response>, StoreError> {
        let deadline = self.deadline();
        let timeout = self.timeout;
        self.server()?;
        let server = self.server.as_ref().expect("set above");
        let mut headers = vec![
            ("X-Vault-Token", server.token.as_str()),
            ("X-Vault-Request", "true"),
        ];
        if let Some(namespace) = &server.namespace {
            headers.push(("X-Vault-Namespace", namespace.as_str()));
        }
        let mut answers: Vec<Option<Response>> = requests.iter().map(|_| None).collect();
        let mut backoff = FIRST_BACKOFF;
        let mut last_transient: Option<String> = None;
        let mut first_refused: Option<Instant> = None;
        loop {
            let mut pending: Vec<usize> = (0..requests.len())
                .filter(|&i| answers[i].is_none())
                .collect();
            if pending.is_empty() {
                return Ok(answers.into_iter().map(Option::unwrap).collect());
            }
            if self.one_at_a_time {
                pending.truncate(1);
            }
            let batch: Vec<&Request> = pending.iter().map(|&i| &requests[i]).collect();
            let (responses, failure) =
                exchange(&mut self.connection, server, &batch, &headers, deadline);
            let answered = responses.len();
            let mut wait = false;
            for (index, response) in pending.into_iter().zip(responses) {
                match transient(&response) {
                    Some(why) => {
                        last_transient = Some(why);
                        wait = true;
                    }
                    None => answers[index] = Some(response),
                }
            }
            // A server that closed the connection before it had answered
            // the whole batch (HTTP/1.0, `Connection: close`, a proxy) will
            // do so again: from now on, one request per connection. (One
            // that resets it with requests unread may lose even the first
            // answer on the way: that counts too.)
            let closed_early = matches!(failure, None | Some(Failure::Broken(_)));
            if closed_early && answered < batch.len() && batch.len() > 1 {
                self.one_at_a_time = true;
            }
            match failure {
                None => {}
                // Closed after some answers: those are kept, the rest go
                // again at once.
                Some(Failure::Broken(_)) if answered > 0 => {}
                Some(Failure::Connect(err)) => {
                    // A node that restarts, or a load balancer between
                    // nodes, may refuse for a moment; a server that is
                    // down refuses for good, and is told after a second.
                    let since = *first_refused.get_or_insert_with(Instant::now);
                    let why = format!("nothing listens at {}: {err}", server.address);
                    if since.elapsed() >= REFUSED_FOR {
                        return Err(server_error(format!(
                            "{why}\n  check BAO_ADDR (or VAULT_ADDR), and that the server runs"
                        )));
                    }
                    last_transient = Some(why);
                    wait = true;
                }
                Some(Failure::Broken(err)) => {
                    last_transient =
                        Some(format!("the connection to {} broke: {err}", server.address));
                    wait = true;
                }
                Some(Failure::TimedOut) => {
                    return Err(timed_out(server, timeout, last_transient.as_deref()));
                }
                Some(Failure::Tls(reason)) => return Err(tls_error(server, &reason)),
                Some(Failure::PlainHttp) => {
                    return Err(server_error(format!(
                        "{} speaks plain HTTP, not TLS\n  use plain HTTP: export {}={}",
                        server.address,
                        server.address_variable,
                        server.endpoint.as_plain_http()
                    )));
                }
                Some(Failure::Malformed(what)) => {
                    return Err(server_error(format!(
                        "{} answered something that is not HTTP as expected ({what}): is \
                         BAO_ADDR (or VAULT_ADDR) the server's API address?",
                        server.address
                    )));
                }
                Some(Failure::TooLarge(what)) => {
                    return Err(server_error(format!(
                        "{} sent an answer larger than any KV answer ({what}); nothing more \
                         was read: is BAO_ADDR (or VAULT_ADDR) the server's API address?",
                        server.address
                    )));
                }
            }
            if !wait {
                continue;
            }
            // Something transient: wait, then try again, within the deadline.
            if Instant::now() + backoff >= deadline {
                let why = last_transient.unwrap_or_default();
                // Refused every time: nothing listens there.
                if why.starts_with("nothing listens") {
                    return Err(server_error(format!(
                        "{why}\n  check BAO_ADDR (or VAULT_ADDR), and that the server runs"
                    )));
                }
                return Err(timed_out(server, timeout, Some(&why)));
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// One request, sent as a batch of one.
    fn send_one(&mut self, request: Request) -> Result<Response, StoreError> {
        Ok(self.send(vec![request])?.remove(0))
    }

    /// `body` as JSON of `content_type` to the secret of `service`.
    fn send_json(
        &mut self,
        method: &'static str,
        service: &str,
        content_type: &'static str,
        body: &Value,
    ) -> Result<Response, StoreError> {
        let body = Zeroizing::new(serde_json::to_vec(body).expect("JSON of strings"));
        let path = self.data_path(service);
        self.send_one(Request {
            method,
            path,
            body: Some((content_type, body)),
        })
    }

    /// One secret's data: `None` when there is no such secret (or it was
    /// deleted), with its version for check-and-set (0 when none).
    fn read_secret(&mut self, service: &str) -> Result<(Option<Map>, u64), StoreError> {
        let path = self.data_path(service);
        let answer = self.send_one(Request {
            method: "GET",
            path,
            body: None,
        })?;
        self.secret_of(&answer, service)
    }

    fn secret_of(
        &mut self,
        answer: &Response,
        service: &str,
    ) -> Result<(Option<Map>, u64), StoreError> {
        match answer.status {
            200 => parse_secret(&answer.body).map_err(|what| {
                server_error(format!(
                    "the secret {} is not KV v2 data as expected: {what}",
                    self.shown_path(service)
                ))
            }),
            404 if is_no_such_secret(&answer.body) => {
                // No secret, or one whose latest version was deleted: its
                // metadata still has the version, for check-and-set.
                let version = parse_version(&answer.body).unwrap_or(0);
                Ok((None, version))
            }
            _ => Err(self.refused(answer, service)),
        }
    }

    /// `MOUNT/PREFIX/SERVICE`, as a person would type it to `bao kv get`.
    fn shown_path(&self, service: &str) -> String {
        format!("{}/{}", self.settings.mount, self.secret_path(service))
    }

    /// Writes `data` as the secret's new version if its version is still
    /// `version`; `false` on a check-and-set conflict.
    fn write_cas(&mut self, service: &str, data: &Map, version: u64) -> Result<bool, StoreError> {
        let body = serde_json::json!({ "options": { "cas": version }, "data": data });
        let answer = self.send_json("POST", service, "application/json", &body)?;
        match answer.status {
            200 | 204 => Ok(true),
            400 if errors(&answer.body)
                .iter()
                .any(|m| m.contains("check-and-set")) =>
            {
                Ok(false)
            }
            _ => Err(self.refused(&answer, service)),
        }
    }

    /// A JSON merge patch of the secret; `None` when patching is not for
    /// us here (no secret yet, or the policy does not allow `patch`).
    fn patch(&mut self, service: &str, patch: &Value) -> Result<Option<()>, StoreError> {
        let body = serde_json::json!({ "data": patch });
        let answer = self.send_json("PATCH", service, "application/merge-patch+json", &body)?;
        match answer.status {
            200 | 204 => Ok(Some(())),
            // No secret to patch, a policy without `patch`, or a server
            // without PATCH: read, change and write back instead.
            404 | 405 => Ok(None),
            403 => Ok(None),
            _ => Err(self.refused(&answer, service)),
        }
    }

    /// Reads, changes and writes back with check-and-set, until no other
    /// writer came in between (or the deadline).
    fn read_change_write(
        &mut self,
        service: &str,
        change: impl Fn(&mut Map) -> bool,
    ) -> Result<bool, StoreError> {
        let deadline = self.deadline();
        let mut backoff = FIRST_BACKOFF;
        loop {
            let (data, version) = self.read_secret(service)?;
            let mut data = data.unwrap_or_default();
            if !change(&mut data) {
                return Ok(false);
            }
            if self.write_cas(service, &data, version)? {
                return Ok(true);
            }
            // Another writer came in between: let it finish, backing off
            // as the HA retries do, with some jitter so that writers that
            // keep colliding spread out rather than hammer the server.
            let wait = jittered(backoff);
            if Instant::now() + wait < deadline {
                std::thread::sleep(wait);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            } else {
                return Err(server_error(format!(
                    "{} kept changing while this wrote to it, for {} s; nothing was stored\n  \
                     run this again",
                    self.shown_path(service),
                    self.timeout.as_secs_f32()
                )));
            }
        }
    }
}

type Map = BTreeMap<String, Value>;

/// The vault store's own error: the server, or what is needed to reach it,
/// failed; the reason says which way and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ServerError(String);

impl Fault for ServerError {
    fn class(&self) -> Class {
        Class::Failed
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn server_error(reason: String) -> StoreError {
    StoreError::from(ServerError(reason))
}

/// `backoff`, give or take half of it.
fn jittered(backoff: Duration) -> Duration {
    let mut byte = [0u8; 1];
    let _ = getrandom::getrandom(&mut byte);
    backoff / 2 + backoff * u32::from(byte[0]) / 255
}

/// `value` as the text a Vault secret holds; `label` names it if it is not.
fn text_of<'v>(label: &str, value: &'v Secret) -> Result<&'v str, StoreError> {
    std::str::from_utf8(value.expose()).map_err(|_| {
        StoreError::from(Common::Unstorable {
            what: label.to_owned(),
            reason: "it is not UTF-8, and a Vault secret holds JSON strings".into(),
        })
    })
}

fn exchange(
    connection: &mut Option<Connection>,
    server: &Server,
    batch: &[&Request],
    headers: &[(&str, &str)],
    deadline: Instant,
) -> (Vec<Response>, Option<Failure>) {
    if connection.as_ref().is_none_or(|open| !open.is_reusable()) {
        *connection = None;
        match Connection::open(&server.endpoint, server.tls.as_ref(), deadline) {
            Ok(open) => *connection = Some(open),
            Err(failure) => return (Vec::new(), Some(failure)),
        }
    }
    let open = connection.as_mut().expect("opened above");
    let (answers, failure) = open.exchange(batch, headers, deadline);
    if failure.is_some() {
        *connection = None;
    }
    (answers, failure)
}

/// Percent-encodes a path, keeping `/` between segments and the characters
/// that need no encoding.
fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for byte in path.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

impl Store for Vault {
    fn name(&self) -> &'static str {
        NAME
    }

    fn cache_identity(&self) -> Option<Zeroizing<String>> {
        server::identity(&self.settings)
    }

    /// One GET per distinct path, all sent at once on one connection.
    fn get_all(&mut self, keys: &[Key<'_>]) -> Result<Vec<Option<Found>>, StoreError> {
        self.bounded(|vault| vault.read_all(keys))
    }

    fn set(&mut self, key: Key<'_>, label: &str, value: &Secret) -> Result<(), StoreError> {
        self.bounded(|vault| vault.set_one(key, label, value))
    }

    fn delete(&mut self, key: Key<'_>) -> Result<usize, StoreError> {
        self.bounded(|vault| vault.delete_one(key))
    }

    /// One write per secret path, with every new key of that path in it.
    fn create_all(&mut self, items: &[(Key<'_>, String, &Secret)]) -> Result<(), StoreError> {
        self.bounded(|vault| vault.create_each_path(items))
    }
}

/// The store calls, each run by `Store`'s under one deadline (`bounded`).
impl Vault {
    /// One GET per distinct path, all sent at once on one connection.
    fn read_all(&mut self, keys: &[Key<'_>]) -> Result<Vec<Option<Found>>, StoreError> {
        let mut services: Vec<&str> = keys.iter().map(|key| key.service).collect();
        services.sort_unstable();
        services.dedup();
        // The mount's version, asked in the same batch as the reads: one
        // round trip still.
        let requests = std::iter::once(self.mount_query())
            .chain(services.iter().map(|service| Request {
                method: "GET",
                path: self.data_path(service),
                body: None,
            }))
            .collect();
        let answers = self.send(requests)?;
        let mut secrets = BTreeMap::new();
        for (service, answer) in services.iter().zip(&answers[1..]) {
            let (data, _) = self.secret_of(answer, service)?;
            secrets.insert(*service, data);
        }
        // After the reads: what they answered (sealed, a web server's page)
        // says more than what the version query did.
        self.check_mount(&answers[0])?;
        Ok(keys
            .iter()
            .map(|key| {
                let value = secrets.get(key.service)?.as_ref()?.get(key.username)?;
                Some(Found {
                    secret: Secret::new(value_bytes(value)),
                    matches: 1,
                    cached: None,
                })
            })
            .collect())
    }

    fn set_one(&mut self, key: Key<'_>, label: &str, value: &Secret) -> Result<(), StoreError> {
        let text = Zeroizing::new(text_of(label, value)?.to_owned());
        self.ensure_kv2()?;
        let patch = Value::Object(
            [(key.username.to_owned(), Value::String(text.to_string()))]
                .into_iter()
                .collect(),
        );
        if self.patch(key.service, &patch)?.is_some() {
            return Ok(());
        }
        self.read_change_write(key.service, |data| {
            data.insert(key.username.to_owned(), Value::String(text.to_string()));
            true
        })
        .map(drop)
    }

    fn delete_one(&mut self, key: Key<'_>) -> Result<usize, StoreError> {
        self.ensure_kv2()?;
        let changed =
            self.read_change_write(key.service, |data| data.remove(key.username).is_some())?;
        Ok(usize::from(changed))
    }

    /// One write per secret path, with every new key of that path in it.
    fn create_each_path(&mut self, items: &[(Key<'_>, String, &Secret)]) -> Result<(), StoreError> {
        let mut by_path: BTreeMap<&str, Map> = BTreeMap::new();
        for (key, label, value) in items {
            let text = text_of(label, value)?;
            by_path
                .entry(key.service)
                .or_default()
                .insert(key.username.to_owned(), Value::String(text.to_owned()));
        }
        if !by_path.is_empty() {
            self.ensure_kv2()?;
        }
        for (service, data) in by_path {
            let patch = Value::Object(data.clone().into_iter().collect());
            if self.patch(service, &patch)?.is_some() {
                continue;
            }
            self.read_change_write(service, |old| {
                old.extend(data.clone());
                true
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_percent_encoded_but_keep_their_slashes() {
        assert_eq!(encode_path("team/acme api"), "team/acme%20api");
        assert_eq!(encode_path("ünï?#"), "%C3%BCn%C3%AF%3F%23");
    }
}
