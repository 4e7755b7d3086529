//! What kind of machine this is: a container, WSL. For `doctor`'s report
//! and for messages that explain why a store cannot be used here.

use std::path::Path;

/// The container this runs in.
pub(crate) struct Container {
    /// What it is: `Docker`, `Podman`, or what `container=` says (`lxc`,
    /// `systemd-nspawn`, ...).
    #[cfg_attr(
        not(target_os = "linux"),
        allow(dead_code, reason = "only the kernel keyring's messages use it")
    )]
    pub(crate) name: String,
    /// How we know.
    pub(crate) evidence: String,
}

/// The container this runs in, by the marks Docker, Podman, systemd-nspawn
/// and others leave. Those are Unix paths and variables: on Windows,
/// `/.dockerenv` would be looked up on the current drive (and Wine maps `/`
/// to the host's root), so Windows reports none.
pub(crate) fn container() -> Option<Container> {
    if !cfg!(unix) {
        return None;
    }
    let found = |name: &str, evidence: String| {
        Some(Container {
            name: name.to_owned(),
            evidence,
        })
    };
    for (mark, name) in [("/.dockerenv", "Docker"), ("/run/.containerenv", "Podman")] {
        if Path::new(mark).exists() {
            return found(name, format!("{mark} exists"));
        }
    }
    if let Some(kind) = std::env::var_os("container").filter(|kind| !kind.is_empty()) {
        let kind = kind.to_string_lossy();
        return found(&kind, format!("container={kind}"));
    }
    // Only readable when we run as PID 1's user.
    if let Some(kind) = std::fs::read("/proc/1/environ")
        .ok()
        .and_then(|environ| container_from_environ(&environ))
    {
        return found(&kind, format!("PID 1 has container={kind}"));
    }
    let cgroup = std::fs::read_to_string("/proc/1/cgroup").unwrap_or_default();
    ["docker", "kubepods", "containerd", "lxc"]
        .into_iter()
        .find(|word| cgroup.contains(word))
        .and_then(|word| found(word, format!("/proc/1/cgroup mentions {word}")))
}

/// WSL, as its kernel and its environment say; `Some` says how we know.
/// WSL is Linux: a Windows build is never in it, even if a variable of
/// WSL's is passed on to it.
pub(crate) fn wsl() -> Option<String> {
    if !cfg!(unix) {
        return None;
    }
    for variable in ["WSL_DISTRO_NAME", "WSL_INTEROP"] {
        if std::env::var_os(variable).is_some_and(|value| !value.is_empty()) {
            return Some(format!("{variable} is set"));
        }
    }
    wsl_kernel(&std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?)
}

/// WSL's kernels name Microsoft in their release (`4.4.0-19041-Microsoft`
/// for WSL 1, `5.15.153.1-microsoft-standard-WSL2` for WSL 2).
fn wsl_kernel(release: &str) -> Option<String> {
    let lower = release.to_lowercase();
    (lower.contains("microsoft") || lower.contains("wsl"))
        .then(|| format!("kernel {}", release.trim()))
}

/// `container=NAME` in a process's environment (NUL-separated).
fn container_from_environ(environ: &[u8]) -> Option<String> {
    environ
        .split(|&byte| byte == 0)
        .find_map(|entry| entry.strip_prefix(b"container="))
        .filter(|name| !name.is_empty())
        .map(|name| String::from_utf8_lossy(name).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_container_comes_from_pid_1s_environment() {
        assert_eq!(
            container_from_environ(b"PATH=/bin\0container=podman\0HOME=/"),
            Some("podman".to_owned())
        );
        assert_eq!(container_from_environ(b"PATH=/bin\0container=\0"), None);
        assert_eq!(container_from_environ(b"PATH=/bin\0"), None);
    }

    #[test]
    fn wsl_is_known_by_its_kernel() {
        assert_eq!(
            wsl_kernel("5.15.153.1-microsoft-standard-WSL2\n").as_deref(),
            Some("kernel 5.15.153.1-microsoft-standard-WSL2")
        );
        assert_eq!(
            wsl_kernel("4.4.0-19041-Microsoft\n").as_deref(),
            Some("kernel 4.4.0-19041-Microsoft")
        );
        assert_eq!(wsl_kernel("6.1.0-18-amd64\n"), None);
    }
}
