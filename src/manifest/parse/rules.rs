//! The check that no keyring item is given two `generate` rules, in
//! `[secrets]` or in any profile's view of it.

use crate::manifest::Error;
use crate::manifest::{Entry, Generate, Manifest};

/// A keyring item: service and username.
type Item<'m> = (&'m str, &'m str);

/// Fails where one item is given two `generate` rules: in [secrets], or in
/// a profile's view of it.
///
/// A view is never built, as thousands of entries times dozens of profiles
/// would make every command slow on a hostile manifest. [secrets] is
/// checked once. In a profile's view, a clash must involve what the profile
/// adds: its own entries, or the entries of [secrets] that name no service
/// and that its [defaults] moves to another service ("moved"). Moved
/// entries cannot clash with each other (they shared one item in [secrets]
/// already), so they clash only with entries that [secrets] names with the
/// profile's service, which is worked out once per such service, or with
/// the profile's own entries. Each profile then costs what its own entries
/// do, and the whole check is linear.
pub(super) fn check_generate_rules<'m>(
    manifest: &'m Manifest,
    conflict: impl Fn(&Entry, &Entry, &str, Option<&str>) -> Error,
) -> Result<(), Error> {
    use std::collections::HashMap;
    // [secrets]' entries with `generate`. Those that name their service,
    // by item: the rule, one of them, how many. Those that name none (all
    // of [defaults]' service), by username: the same.
    let mut named: HashMap<Item<'m>, (Generate, &'m Entry, usize)> = HashMap::new();
    let mut defaulted: HashMap<&'m str, (Generate, &'m Entry, usize)> = HashMap::new();
    for entry in &manifest.entries {
        let Some(rule) = entry.generate else { continue };
        let item = (entry.service.as_str(), entry.username.as_str());
        let (first, other, count) = if entry.service_from_defaults {
            defaulted.entry(item.1).or_insert((rule, entry, 0))
        } else {
            named.entry(item).or_insert((rule, entry, 0))
        };
        if *first != rule {
            return Err(conflict(entry, other, item.0, None));
        }
        *count += 1;
    }
    // A named and a defaulted entry on one item (a name that repeats
    // [defaults]' service).
    for (user, (rule, moved, _)) in &defaulted {
        if let Some((theirs, other, _)) = named.get(&(moved.service.as_str(), *user))
            && theirs != rule
        {
            return Err(conflict(moved, other, &moved.service, None));
        }
    }
    let base_default = defaulted
        .values()
        .next()
        .map(|(_, d, _)| d.service.as_str());
    let generating: HashMap<&'m str, &'m Entry> = manifest
        .entries
        .iter()
        .filter(|e| e.generate.is_some())
        .map(|e| (e.name.as_str(), e))
        .collect();
    let mut named_by_service: HashMap<&'m str, Vec<&'m str>> = HashMap::new();
    for (service, user) in named.keys() {
        named_by_service.entry(service).or_default().push(user);
    }
    for profile in &manifest.profiles {
        let under = Some(profile.name.as_str());
        // Where [secrets]' defaulted entries are in this view.
        let moved_to = profile
            .default_service
            .as_deref()
            .filter(|service| base_default.is_some_and(|base| base != *service));
        let defaulted_at = moved_to.or(base_default);
        // How many of [secrets]' entries the profile replaces, of each kind.
        let mut named_gone: HashMap<Item<'m>, usize> = HashMap::new();
        let mut defaulted_gone: HashMap<&'m str, usize> = HashMap::new();
        for entry in &profile.entries {
            if let Some(base) = generating.get(entry.name.as_str()) {
                if base.service_from_defaults {
                    *defaulted_gone.entry(base.username.as_str()).or_default() += 1;
                } else {
                    let item = (base.service.as_str(), base.username.as_str());
                    *named_gone.entry(item).or_default() += 1;
                }
            }
        }
        // [secrets]' rule at `item` in this view, and an entry that gives it.
        let theirs = |item: Item<'m>| -> Option<(Generate, &'m Entry)> {
            let named_left = named
                .get(&item)
                .filter(|(_, _, count)| *count > named_gone.get(&item).copied().unwrap_or(0));
            let defaulted_left = defaulted
                .get(item.1)
                .filter(|_| defaulted_at == Some(item.0))
                .filter(|(_, _, count)| *count > defaulted_gone.get(item.1).copied().unwrap_or(0));
            // Both left means one rule: another was reported as a clash
            // of [secrets] or of the move, before any own entry is looked at.
            named_left
                .or(defaulted_left)
                .map(|(rule, entry, _)| (*rule, *entry))
        };
        // A move that lands defaulted entries on an item [secrets] names
        // with another rule.
        if let Some(service) = moved_to {
            for user in named_by_service.get(service).into_iter().flatten() {
                let item = (service, *user);
                let (Some((a, x, _)), Some((b, d, _))) = (named.get(&item), defaulted.get(user))
                else {
                    continue;
                };
                let named_left = *named.get(&item).map_or(&0, |(_, _, c)| c)
                    > named_gone.get(&item).copied().unwrap_or(0);
                let moved_left = *defaulted.get(user).map_or(&0, |(_, _, c)| c)
                    > defaulted_gone.get(user).copied().unwrap_or(0);
                if a != b && named_left && moved_left {
                    return Err(conflict(d, x, service, under));
                }
            }
        }
        let mut own: HashMap<Item<'m>, (Generate, &'m Entry)> = HashMap::new();
        for entry in &profile.entries {
            let Some(rule) = entry.generate else { continue };
            let item = (entry.service.as_str(), entry.username.as_str());
            let (first, other) = *own.entry(item).or_insert((rule, entry));
            let clash = if first == rule {
                theirs(item)
                    .filter(|(there, _)| *there != rule)
                    .map(|(_, e)| e)
            } else {
                Some(other)
            };
            if let Some(other) = clash {
                return Err(conflict(entry, other, item.0, under));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::manifest::parse::test_support::{error, parse};

    #[test]
    fn one_item_made_two_ways_is_refused_where_the_second_way_is() {
        let message = error(
            "[secrets]\nA = { service = \"s\", username = \"u\", generate = true }\n\
             B = { service = \"s\", username = \"u\", generate = { charset = \"hex\" } }\n",
        );
        assert!(
            message.starts_with(
                "secrets.toml:3:1: `B` and `A` are one keyring item (s / u), with different \
                 `generate` rules"
            ),
            "{message}"
        );
        // In a profile's view of the manifest too, and one made by a
        // profile's [defaults], which says so.
        let message = error(
            "[defaults]\nservice = \"s\"\n[secrets]\nA = { username = \"u\", generate = true }\n\
             B = { service = \"t\", username = \"u\", generate = { length = 20 } }\n\
             [profiles.p.defaults]\nservice = \"t\"\n",
        );
        assert!(
            message.starts_with(
                "secrets.toml:4:1: `A` and `B` are one keyring item (t / u) under [profiles.p]"
            ),
            "{message}"
        );
        let message = error(
            "[secrets]\nA = { service = \"s\", username = \"u\", generate = true }\n\
             [profiles.p.secrets]\nB = { service = \"s\", username = \"u\", generate = { length = 20 } }\n",
        );
        assert!(
            message.starts_with("secrets.toml:4:1: `B` and `A`"),
            "{message}"
        );
        // The same rule twice, or the rule on one name only, is one item made one way.
        parse(
            "[secrets]\nA = { service = \"s\", username = \"u\", generate = true }\n\
             B = { service = \"s\", username = \"u\", generate = { length = 32 } }\n\
             C = { service = \"s\", username = \"u\" }\n",
        )
        .unwrap();
    }

    /// Whether some view of `manifest` ([secrets], or a profile's) gives one
    /// item two rules, found the plain way: by building every view.
    fn clashes_plainly(manifest: &Manifest) -> bool {
        let mut views = vec![manifest.entries.clone()];
        for profile in &manifest.profiles {
            views.push(
                manifest
                    .clone()
                    .with_profile(&profile.name, "--profile")
                    .unwrap()
                    .0
                    .entries,
            );
        }
        views.iter().any(|entries| {
            entries.iter().any(|a| {
                entries.iter().any(|b| {
                    a.service == b.service
                        && a.username == b.username
                        && a.generate.is_some()
                        && b.generate.is_some()
                        && a.generate != b.generate
                })
            })
        })
    }

    proptest::proptest! {
        // Clashes need two entries on one user with two rules, often through
        // a profile's [defaults]: enough cases to meet each kind many times.
        #![proptest_config(proptest::test_runner::Config::with_cases(3000))]
        #[test]
        fn the_linear_rule_check_finds_exactly_the_clashes_every_view_has(
            base in proptest::collection::vec((0..4usize, 0..3usize, 0..2usize, 0..3usize), 0..6),
            default in 0..3usize,
            profiles in proptest::collection::vec(
                (proptest::option::of(0..3usize), proptest::collection::vec((0..6usize, 0..3usize, 0..2usize, 0..3usize), 0..4)),
                0..3,
            ),
        ) {
            // service 0 means none (from [defaults]); rule 0 means none.
            let entry = |name: String, service: usize, user: usize, rule: usize| {
                let service = if service == 0 { String::new() } else { format!("service = \"s{service}\", ") };
                let rule = ["", ", generate = true", ", generate = { length = 20 }"][rule];
                format!("{name} = {{ {service}username = \"u{user}\"{rule} }}\n")
            };
            let mut text = format!("[defaults]\nservice = \"s{default}\"\n[secrets]\n");
            let mut seen = std::collections::HashSet::new();
            for (name, service, user, rule) in &base {
                if seen.insert(*name) {
                    text.push_str(&entry(format!("N{name}"), *service, *user, *rule));
                }
            }
            for (index, (default, entries)) in profiles.iter().enumerate() {
                if let Some(default) = default {
                    text.push_str(&format!("[profiles.p{index}.defaults]\nservice = \"s{default}\"\n"));
                }
                text.push_str(&format!("[profiles.p{index}.secrets]\n"));
                let mut seen = std::collections::HashSet::new();
                for (name, service, user, rule) in entries {
                    if seen.insert(*name) {
                        text.push_str(&entry(format!("N{name}"), *service, *user, *rule));
                    }
                }
            }
            let plain = Manifest::parse_checking(Path::new("secrets.toml"), &text, false).unwrap();
            let checked = Manifest::parse(Path::new("secrets.toml"), &text);
            proptest::prop_assert_eq!(checked.is_err(), clashes_plainly(&plain), "{}", text);
        }
    }
}
