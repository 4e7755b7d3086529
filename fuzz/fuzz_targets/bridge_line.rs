//! Any bytes down the WSL bridge's pipe, read as the Linux end reads the
//! helper's answers and as the helper reads requests: lines, each an answer
//! (or request) or an error, never a panic or a hang, and never an error
//! message that quotes the line, which may hold a value.

#![no_main]

use libfuzzer_sys::fuzz_target;
use with_secrets::fuzzing::read_bridge_lines;

/// Longer than any message the readers make; a quoted line makes it longer.
const MESSAGE_MAX: usize = 200;

fuzz_target!(|data: &[u8]| {
    let lines = read_bridge_lines(data);
    // One per `\n`; what follows the last one waits for more.
    assert_eq!(lines.len(), data.iter().filter(|&&byte| byte == b'\n').count());
    // Each line is what came before its `\n`, less one `\r` before that.
    let mut rest = data;
    for read in &lines {
        assert!(!read.line.contains(&b'\n'), "{read:?}");
        rest = rest.strip_prefix(&read.line[..]).expect("the line as it came");
        rest = rest.strip_prefix(b"\r\n").or(rest.strip_prefix(b"\n")).expect("its line end");
        for (side, outcome) in [("answer", &read.answer), ("request", &read.request)] {
            match outcome {
                Ok(again) => {
                    // Written again: one line of ASCII, which reads back as
                    // itself.
                    assert!(again.is_ascii(), "{side}: {again:?}");
                    assert!(again.ends_with(b"\n"), "{side}: {again:?}");
                    assert_eq!(again.iter().filter(|&&byte| byte == b'\n').count(), 1);
                    let back = read_bridge_lines(again);
                    assert_eq!(back.len(), 1);
                    let back = match side {
                        "answer" => &back[0].answer,
                        _ => &back[0].request,
                    };
                    assert_eq!(back.as_ref(), Ok(again), "{side} does not read back as itself");
                }
                Err(message) => {
                    assert!(message.len() <= MESSAGE_MAX, "{side}: {message:?}");
                    assert!(!message.chars().any(char::is_control), "{side}: {message:?}");
                }
            }
        }
    }
});
