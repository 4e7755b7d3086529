//! Any bytes as `secrets.toml`: a manifest or a located error, never a panic,
//! a stack overflow or a hang, and never a message that could drive a terminal.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use with_secrets::{EnvName, Manifest, ManifestError};

fuzz_target!(|data: &[u8]| {
    // `load` refuses invalid UTF-8 before parsing; a lossy decode gives the
    // parser every input instead.
    let text = String::from_utf8_lossy(data);
    match Manifest::parse(Path::new("secrets.toml"), &text) {
        Ok(manifest) => {
            for entry in &manifest.entries {
                assert!(EnvName::is_valid(entry.name.as_str()), "{entry:?}");
                assert!(!entry.service.is_empty() && !entry.username.is_empty());
            }
            // Reported in the order of the file.
            assert!(manifest.entries.windows(2).all(|w| w[0].line < w[1].line));
            // Every profile can be used, and gives valid entries, each name once.
            let names: Vec<String> = manifest.profiles.iter().map(|p| p.name.clone()).collect();
            for name in names {
                let (selected, _) = manifest.clone().with_profile(&name, "--profile").expect("a listed profile");
                for (i, entry) in selected.entries.iter().enumerate() {
                    assert!(EnvName::is_valid(entry.name.as_str()), "{entry:?}");
                    assert!(!entry.service.is_empty() && !entry.username.is_empty());
                    assert!(selected.entries[..i].iter().all(|e| e.name != entry.name));
                    if let Some(rule) = entry.generate {
                        assert!((16..=4096).contains(&rule.length), "{rule:?}");
                    }
                }
            }
        }
        Err(err @ ManifestError::Manifest { .. }) => {
            let message = err.to_string();
            assert!(message.starts_with("secrets.toml:"), "{message}");
            assert!(
                !message.chars().any(|c| c.is_control() && c != '\n'),
                "{message:?}"
            );
        }
        Err(other) => panic!("not a located manifest error: {other:?}"),
    }
});
