//! What the agent serves, and the screening of each request: hello is
//! answered at once, a request for an entry the manifests do not name (or a
//! write to a read-only agent) is refused by name, the rest goes to the
//! store. Fuzzed through `fuzz_lines` (fuzz/fuzz_targets/agent_request.rs).

use std::collections::HashSet;

use crate::store;
use crate::store::bridge::wire::{self, Lines, PROTOCOL, Request, Response, VERSION};
use crate::term::printable::printable;

/// A refusal of the agent's own.
pub(crate) fn refusal(message: String) -> Response {
    Response {
        error: Some(format!("refused: {message}")),
        class: Some(store::Class::Denied.name().to_owned()),
        ..Response::default()
    }
}

/// What the agent serves, and to whom it says so.
pub(crate) struct Policy {
    /// Every (service, username) of the manifests' entries.
    pub(crate) keys: HashSet<(String, String)>,
    /// The manifests, as the agent names them.
    pub(crate) paths: Vec<String>,
    /// The store it serves from, by name.
    pub(crate) store: &'static str,
    /// Whether runs may store and delete.
    pub(crate) writes: bool,
}

/// What the agent does with a request.
pub(crate) enum Screened {
    /// Answers it itself: hello, or a refusal (with its log line).
    Answer {
        response: Response,
        log: Option<String>,
    },
    /// Hands it to the store; `named` says what it asks, for the log.
    Store { request: Request, named: String },
}

impl Policy {
    /// Hello is answered here; a request for an entry the manifests do not
    /// name, or a write to a read-only agent, is refused by name; the rest
    /// goes to the store. Neither the answer nor the log line quotes a
    /// value.
    pub(crate) fn screen(&self, request: Request) -> Screened {
        let (what, keys): (&str, Vec<(&str, &str)>) = match &request {
            Request::Hello { .. } => {
                return Screened::Answer {
                    response: Response {
                        protocol: Some(PROTOCOL),
                        version: Some(VERSION.to_owned()),
                        store: Some(self.store.to_owned()),
                        serves: Some(self.paths.clone()),
                        writes: Some(self.writes),
                        ..Response::default()
                    },
                    log: None,
                };
            }
            Request::Get { keys } => (
                "get",
                keys.iter()
                    .map(|key| (key.service.as_str(), key.username.as_str()))
                    .collect(),
            ),
            Request::Set {
                service, username, ..
            } => ("set", vec![(service.as_str(), username.as_str())]),
            Request::Delete { service, username } => {
                ("delete", vec![(service.as_str(), username.as_str())])
            }
        };
        if what == "get" && keys.is_empty() {
            return Screened::Answer {
                response: Response {
                    found: Some(Vec::new()),
                    ..Response::default()
                },
                log: None,
            };
        }
        let named = format!(
            "{what} {}",
            keys.iter()
                .map(|(service, username)| format!(
                    "{} / {}",
                    printable(service),
                    printable(username)
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let unserved: Vec<&(&str, &str)> = keys
            .iter()
            .filter(|(service, username)| {
                !self
                    .keys
                    .contains(&((*service).to_owned(), (*username).to_owned()))
            })
            .collect();
        if let Some((service, username)) = unserved.first() {
            return Screened::Answer {
                response: refusal(format!(
                    "the agent does not serve {} / {}{}: it serves only the entries of {}\n  on \
                     the agent's machine, start it again with a -m for the manifest that names \
                     it too (one -m per manifest)",
                    printable(service),
                    printable(username),
                    match unserved.len() {
                        1 => String::new(),
                        n => format!(
                            " (nor {} other entr{})",
                            n - 1,
                            if n == 2 { "y" } else { "ies" }
                        ),
                    },
                    self.paths.join(", ")
                )),
                log: Some(format!("{named}: refused, not served")),
            };
        }
        // A run asks each item once: more keys than are served can only be
        // repeats, which would only make the answer (and the log) larger.
        if keys.len() > self.keys.len() {
            return Screened::Answer {
                response: refusal(format!(
                    "a lookup of {} entries, and the agent serves {}",
                    keys.len(),
                    self.keys.len()
                )),
                log: Some(format!(
                    "{what} of {} entries: refused, too many",
                    keys.len()
                )),
            };
        }
        if what != "get" && !self.writes {
            return Screened::Answer {
                response: refusal(
                    "the agent is read-only, so nothing was changed\n  on the agent's machine, \
                     restart it with --allow-writes to let runs store and delete through it"
                        .to_owned(),
                ),
                log: Some(format!("{named}: refused, read-only")),
            };
        }
        Screened::Store { request, named }
    }
}

/// For the fuzz target: `bytes` read as a connection is, each request
/// screened by an agent serving `fuzzing::SERVED`, read-only.
pub(crate) fn fuzz_lines(bytes: &[u8]) -> Vec<crate::fuzzing::AgentLine> {
    let (service, username) = crate::fuzzing::SERVED;
    let policy = Policy {
        keys: HashSet::from([(service.to_owned(), username.to_owned())]),
        paths: vec!["/project/secrets.toml".to_owned()],
        store: "file",
        writes: false,
    };
    let mut lines = Lines::new();
    lines.push(bytes);
    let mut out = Vec::new();
    while let Ok(Some(line)) = lines.take() {
        let mut read = crate::fuzzing::AgentLine {
            line: line.to_vec(),
            keys: Vec::new(),
            kind: "none",
            value: None,
            value_free: true,
            to_store: false,
            answer: None,
            log: None,
        };
        if let Ok(request) = wire::read_request(&line) {
            (read.kind, read.keys) = match &request {
                Request::Hello { .. } => ("hello", Vec::new()),
                Request::Get { keys } => (
                    "get",
                    keys.iter()
                        .map(|key| (key.service.clone(), key.username.clone()))
                        .collect(),
                ),
                Request::Set {
                    service, username, ..
                } => ("set", vec![(service.clone(), username.clone())]),
                Request::Delete { service, username } => {
                    ("delete", vec![(service.clone(), username.clone())])
                }
            };
            // The same request with another value: what the agent says of
            // it must not change with the value.
            let other = match &request {
                Request::Set {
                    service,
                    username,
                    label,
                    value,
                } => {
                    read.value = serde_json::to_value(value)
                        .ok()
                        .and_then(|value| value.as_str().map(str::to_owned));
                    Some(Request::Set {
                        service: service.clone(),
                        username: username.clone(),
                        label: label.clone(),
                        value: wire::WireValue::encode(b"another value"),
                    })
                }
                _ => None,
            };
            let outcome = |screened: Screened| match screened {
                Screened::Answer { response, log } => {
                    (false, Some(wire::to_line(&response).to_vec()), log)
                }
                Screened::Store { named, .. } => (true, None, Some(named)),
            };
            let (to_store, answer, log) = outcome(policy.screen(request));
            read.value_free = other.is_none_or(|other| {
                outcome(policy.screen(other)) == (to_store, answer.clone(), log.clone())
            });
            (read.to_store, read.answer, read.log) = (to_store, answer, log);
        }
        out.push(read);
    }
    out
}
