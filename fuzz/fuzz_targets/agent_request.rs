//! Any bytes down a connection to `with-secrets agent`, read as the agent
//! reads them and screened as it screens each request: never a panic or a
//! hang; only a lookup of the one entry it serves goes on to its store; and
//! neither its answer nor its log line depends on a value a request carried.

#![no_main]

use libfuzzer_sys::fuzz_target;
use with_secrets::fuzzing::{SERVED, agent_requests};

fuzz_target!(|data: &[u8]| {
    let lines = agent_requests(data);
    assert_eq!(lines.len(), data.iter().filter(|&&byte| byte == b'\n').count());
    for read in &lines {
        if read.to_store {
            // Read-only, serving one entry: only a lookup of it, once.
            assert_eq!(read.kind, "get", "{read:?}");
            assert_eq!(read.keys.len(), 1, "{read:?}");
            assert!(
                read.keys.iter().all(|(service, username)| (service.as_str(), username.as_str()) == SERVED),
                "{read:?}"
            );
            assert!(read.answer.is_none(), "{read:?}");
        } else if read.kind != "none" {
            let answer = read.answer.as_deref().expect("answered itself");
            assert!(answer.is_ascii() && answer.ends_with(b"\n"), "{read:?}");
            assert_eq!(answer.iter().filter(|&&byte| byte == b'\n').count(), 1);
            let text = String::from_utf8_lossy(answer);
            if read.kind == "get" && read.keys.is_empty() {
                // Nothing asked, nothing found: answered without the store.
                assert_eq!(text, "{\"found\":[]}\n", "{read:?}");
            } else if read.kind != "hello" {
                assert!(text.contains("\"error\":\"refused: "), "{read:?}");
            }
        }
        // A value is never repeated back, nor logged: what the agent says
        // of a request is the same whatever value it carries.
        assert!(read.value_free, "{read:?}");
    }
});
