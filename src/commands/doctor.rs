//! `with-secrets doctor`: what a person needs to see when things go wrong.
//!
//! It changes nothing, prints no value, and every check it makes is bounded
//! by the run's timeout, so it works on exactly the machines where
//! something hangs or is missing.

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;

use crate::config::{Config, Project};
use crate::error::Error;
use crate::error::first_line;
use crate::resolve;
use crate::store::{self, StoreError, StoreKind};

pub(crate) fn run(config: &Config) -> Result<ExitCode, Error> {
    let project = config.project();
    let mut out = String::new();
    store_section(config, &project, &mut out);
    machine_section(&mut out);
    manifest_section(config, &project, &mut out);
    // The report quotes the manifest, its paths and store messages: no
    // control character of theirs reaches the terminal.
    std::io::stdout()
        .lock()
        .write_all(crate::term::printable::printable_lines(&out).as_bytes())
        .map_err(|source| Error::Stdout { source })?;
    Ok(ExitCode::SUCCESS)
}

/// `store`: which store runs use and why, then what each store there is
/// says of itself (`store::report` asks each in turn).
fn store_section(config: &Config, project: &Result<Project, Error>, out: &mut String) {
    let (kind, source) = match project {
        Ok(project) => (project.store, project.store_source),
        Err(_) => config.store_without_manifest(),
    };
    let vault = project
        .as_ref()
        .map(|project| project.manifest.vault.clone())
        .unwrap_or_default();
    let settings = config.store_settings(&vault);
    let reports: Vec<(StoreKind, store::Report)> = StoreKind::ALL
        .iter()
        .copied()
        .filter_map(|each| store::report(each, kind, &settings).map(|report| (each, report)))
        .collect();
    let usable = |wanted: StoreKind| {
        reports
            .iter()
            .find(|(each, _)| *each == wanted)
            .map(|(_, report)| &report.usable)
    };
    let native = usable(store::native_kind()).cloned().unwrap_or(Ok(()));
    let windows = usable(StoreKind::Windows).filter(|_| cfg!(target_os = "linux"));
    let agent = usable(StoreKind::Agent).filter(|_| settings.agent.is_some());
    let choice = match (kind, agent) {
        // `auto` asks an agent that is named, and only it.
        (StoreKind::Auto, Some(Ok(()))) => {
            format!("agent ({}: WITH_SECRETS_AGENT is set)", source.why())
        }
        (StoreKind::Auto, Some(Err(err))) => format!(
            "agent ({}: WITH_SECRETS_AGENT is set), which FAILS: {}",
            source.why(),
            first_line(err)
        ),
        _ => choice(kind, source.why(), windows, &native),
    };
    let _ = writeln!(out, "store\n  uses:           {choice}");
    for (_, report) in reports {
        labelled(out, report.lines);
    }
    #[cfg(target_os = "linux")]
    labelled(
        out,
        vec![("cache:", crate::store::cache::report(settings.cache))],
    );
}

/// The store `kind` stands for and why, as `auto` would pick it from what
/// the Windows helper and the platform's keyring said.
fn choice(
    kind: StoreKind,
    chosen_by: &str,
    windows: Option<&Result<(), StoreError>>,
    native: &Result<(), StoreError>,
) -> String {
    // `auto` tries the Windows helper on WSL only, even when one is named.
    let on_wsl = crate::machine::wsl().is_some();
    match (kind, windows.filter(|_| on_wsl), native) {
        (StoreKind::Auto, Some(Ok(())), _) => {
            format!("windows ({chosen_by}: on WSL, and the Windows helper answers)")
        }
        // A helper that is there but fails is not passed over: runs fail.
        (StoreKind::Auto, Some(Err(windows)), _) if !windows.means_absent() => format!(
            "windows ({chosen_by}: on WSL, and the Windows helper is there), which FAILS: {}",
            first_line(windows)
        ),
        (StoreKind::Auto, Some(Err(windows)), Err(reason)) => format!(
            "file ({chosen_by}: windows is not here: {}; {} is not here: {})",
            first_line(windows),
            store::native_name(),
            first_line(reason)
        ),
        (StoreKind::Auto, Some(Err(windows)), Ok(())) => format!(
            "{} ({chosen_by}: windows is not here: {}; the platform's keyring answers)",
            store::native_name(),
            first_line(windows)
        ),
        (StoreKind::Auto, None, Err(reason)) => format!(
            "file ({chosen_by}: {} is not here: {})",
            store::native_name(),
            first_line(reason)
        ),
        (StoreKind::Auto, None, Ok(())) => format!(
            "{} ({chosen_by}: the platform's keyring answers)",
            store::native_name()
        ),
        (kind, _, _) => format!("{} ({chosen_by})", kind.name()),
    }
}

/// Writes each (label, text) as a line of a section.
fn labelled(out: &mut String, lines: Vec<(&'static str, String)>) {
    for (label, text) in lines {
        let _ = writeln!(out, "  {label:<16}{text}");
    }
}

/// `machine`: WSL (and whether it can run Windows programs), a container.
fn machine_section(out: &mut String) {
    out.push_str("machine\n");
    let wsl = crate::machine::wsl();
    let on_wsl = wsl.is_some();
    let _ = writeln!(out, "  WSL:            {}", yes_no(wsl));
    if on_wsl {
        let _ = writeln!(out, "  WSL interop:    {}", interop());
    }
    let _ = writeln!(
        out,
        "  container:      {}",
        yes_no(crate::machine::container().map(|container| container.evidence))
    );
}

/// `manifest`: the file, its entry count and the profile; then `entries`,
/// each looked up. Where there is no manifest, why.
fn manifest_section(config: &Config, project: &Result<Project, Error>, out: &mut String) {
    out.push_str("manifest\n");
    let project = match project {
        Ok(project) => project,
        Err(err) => {
            let _ = writeln!(out, "  {}", err.to_string().replace('\n', "\n  "));
            return;
        }
    };
    let manifest = &project.manifest;
    let _ = writeln!(
        out,
        "  {} ({} entr{})",
        crate::term::printable::printable_path(&manifest.path),
        manifest.entries.len(),
        if manifest.entries.len() == 1 {
            "y"
        } else {
            "ies"
        }
    );
    let others: Vec<&str> = manifest.profiles.iter().map(|p| p.name.as_str()).collect();
    let profile = match (&project.profile, others.is_empty()) {
        (Some(name), _) => format!("{name} (of: {})", others.join(", ")),
        (None, true) => "none (the manifest has no profiles)".to_owned(),
        (None, false) => format!(
            "none, so [secrets] alone (--profile NAME picks one of: {})",
            others.join(", ")
        ),
    };
    let _ = writeln!(out, "  profile:        {profile}");
    entries_section(config, project, out);
}

/// `entries`: each entry of the manifest, looked up in the store (without
/// asking anyone), as `check` shows it.
fn entries_section(config: &Config, project: &Project, out: &mut String) {
    out.push_str("entries\n");
    let resolution = resolve::lookup(config, project, false);
    if let Some(err) = &resolution.store_error {
        let _ = writeln!(out, "  ({}: {})", resolution.store, first_line(err));
    }
    for line in super::check::entry_lines(&project.manifest, &resolution, &config.fix, "  ") {
        out.push_str(&line);
        out.push('\n');
    }
}

/// Whether WSL can run Windows programs: its binfmt_misc entry is there
/// and enabled.
fn interop() -> String {
    let entries = [
        "/proc/sys/fs/binfmt_misc/WSLInterop",
        "/proc/sys/fs/binfmt_misc/WSLInterop-late",
    ];
    for entry in entries {
        if let Ok(text) = std::fs::read_to_string(entry) {
            return if text.lines().next() == Some("enabled") {
                format!("works ({entry} is enabled)")
            } else {
                format!(
                    "BROKEN: {entry} is disabled, so Windows programs cannot run; enable it \
                     (echo 1 > {entry} as root) or set [interop] enabled=true in /etc/wsl.conf"
                )
            };
        }
    }
    "BROKEN: no WSLInterop entry in /proc/sys/fs/binfmt_misc, so Windows programs cannot \
     run; check [interop] in /etc/wsl.conf, then run `wsl --shutdown` in Windows"
        .to_owned()
}

fn yes_no(reason: Option<String>) -> String {
    reason.map_or_else(|| "no".to_owned(), |why| format!("yes ({why})"))
}
