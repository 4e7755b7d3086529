//! Any bytes as what a Vault server sends back: an answer, "not yet", or a
//! named error; never a panic, an answer over its bounds, or one that takes
//! bytes it was not given.

#![no_main]

use libfuzzer_sys::fuzz_target;
use with_secrets::fuzzing::{VAULT_MAX_BODY, VAULT_MAX_HEAD, vault_response};

fuzz_target!(|data: &[u8]| {
    // The first byte says what request it answers and whether the
    // connection closed after it.
    let Some((&flags, bytes)) = data.split_first() else {
        return;
    };
    let (head, closed) = (flags & 1 == 1, flags & 2 == 2);
    let whole = vault_response(bytes, head, closed);
    // "Not yet" only while what came is within the bounds: a server that
    // sends without end is stopped, never buffered without end.
    if let Ok(None) = whole {
        let bound = 3 * VAULT_MAX_HEAD + 3 * VAULT_MAX_BODY + 16;
        assert!(bytes.len() <= bound, "{} bytes and still not an answer", bytes.len());
    }
    if let Ok(Some((status, used, body))) = whole {
        assert!((100..=999).contains(&status), "{status}");
        assert!(used <= bytes.len() && body <= used, "{used} {body}");
        assert!(body <= VAULT_MAX_BODY, "{body}");
        // What follows an answer is the next one's: it changes nothing
        // of this one, when the body's end does not hang on the close.
        if !closed {
            let mut longer = bytes.to_vec();
            longer.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
            assert_eq!(
                vault_response(&longer, head, closed),
                whole,
                "an answer changed by what follows it"
            );
            // And less than all of it is not yet an answer.
            if used > 0 {
                assert!(
                    !matches!(vault_response(&bytes[..used - 1], head, false), Ok(Some(_))),
                    "an answer before its end"
                );
            }
        }
    }
});
