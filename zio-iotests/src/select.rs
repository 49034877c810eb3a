//! Test selection: narrows discovered tests by name and by `-g`/`-x`
//! groups, and drops the `disabled` group unless `-g` asks for it. A
//! selection that names no test, or a group no test is in, or leaves
//! nothing to run, is an error: a typo must not pass as an empty run.

use std::collections::BTreeSet;

use anyhow::{Result, bail};

use super::discover::TestCase;

/// Tests in this group never run unless it is named with `-g`.
pub const DISABLED_GROUP: &str = "disabled";

/// What the user asked to run. Empty lists mean "no restriction".
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Only these tests (positional arguments).
    pub names: Vec<String>,
    /// Only tests in at least one of these groups (`-g`).
    pub groups: Vec<String>,
    /// No tests in any of these groups (`-x`).
    pub exclude: Vec<String>,
}

/// Applies `sel` to `tests`, keeping their order.
///
/// Fails if a named test does not exist, if `-g` or `-x` names a group
/// that no test is in, or if nothing is left (saying why), so that a typo
/// is not mistaken for a passing run.
pub fn select(tests: Vec<TestCase>, sel: &Selection) -> Result<Vec<TestCase>> {
    if tests.is_empty() {
        bail!("no tests: a test is a script NAME with its expected output NAME.out");
    }
    if let Some(unknown) = sel
        .names
        .iter()
        .find(|name| !tests.iter().any(|t| &t.name == *name))
    {
        bail!("no such test: {unknown} (a test needs both NAME and NAME.out)");
    }
    let known: BTreeSet<&str> = tests
        .iter()
        .flat_map(|t| t.groups.iter().map(String::as_str))
        .collect();
    if let Some(unknown) = sel
        .groups
        .iter()
        .chain(&sel.exclude)
        .find(|g| !known.contains(g.as_str()))
    {
        let known: Vec<&str> = known.into_iter().collect();
        bail!("no such group: {unknown} (groups: {})", known.join(", "));
    }
    let want_disabled = sel.groups.iter().any(|g| g == DISABLED_GROUP);
    let picked: Vec<TestCase> = tests
        .into_iter()
        .filter(|t| sel.names.is_empty() || sel.names.contains(&t.name))
        .filter(|t| sel.groups.is_empty() || sel.groups.iter().any(|g| t.in_group(g)))
        .filter(|t| !sel.exclude.iter().any(|g| t.in_group(g)))
        .filter(|t| want_disabled || !t.in_group(DISABLED_GROUP))
        .collect();
    if picked.is_empty() {
        bail!("no tests selected: {}", sel.describe());
    }
    Ok(picked)
}

impl Selection {
    /// The selection in command-line words, for the error of an empty one:
    /// `off (group disabled runs only with -g disabled)`, `-g a -x b`.
    fn describe(&self) -> String {
        let mut words = Vec::new();
        if !self.names.is_empty() {
            words.push(self.names.join(" "));
        }
        if !self.groups.is_empty() {
            words.push(format!("-g {}", self.groups.join(",")));
        }
        if !self.exclude.is_empty() {
            words.push(format!("-x {}", self.exclude.join(",")));
        }
        let mut text = format!("nothing matches {}", words.join(" "));
        if !self.groups.iter().any(|g| g == DISABLED_GROUP) {
            text.push_str(" (tests in group disabled run only with -g disabled)");
        }
        text
    }
}

/// `--shard K/N`: the K-th of N parts of a run, for CI jobs that split
/// one suite. A test run belongs to part `fnv1a(name) % N + 1`: which part
/// a test is in depends on its name only, so adding or removing other tests
/// never moves it, and every job of a matrix agrees on the split without
/// talking to the others. (Parts are therefore only roughly equal.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// K, 1-based.
    pub index: u64,
    /// N.
    pub count: u64,
}

impl std::str::FromStr for Shard {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<Shard> {
        let parse = |s: &str| s.parse::<u64>().ok();
        match text.split_once('/').map(|(k, n)| (parse(k), parse(n))) {
            Some((Some(index), Some(count))) if (1..=count).contains(&index) => {
                Ok(Shard { index, count })
            }
            _ => bail!("--shard {text}: want K/N with 1 <= K <= N, e.g. 2/4"),
        }
    }
}

impl Shard {
    /// Whether the test run `name` (`NAME` or `NAME@KERNEL`) is in this part.
    pub fn holds(&self, name: &str) -> bool {
        fnv1a(name.as_bytes()) % self.count == self.index - 1
    }
}

/// 64-bit FNV-1a: a hash fixed by its definition (std's hasher may change
/// between Rust releases, and shards of one matrix may be built apart).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(name: &str, groups: &[&str]) -> TestCase {
        TestCase {
            name: name.into(),
            script: name.into(),
            expected: format!("{name}.out").into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    fn names(tests: &[TestCase]) -> Vec<&str> {
        tests.iter().map(|t| t.name.as_str()).collect()
    }

    #[test]
    fn groups_include_exclude_and_disabled() {
        let all = vec![
            case("a", &["quick"]),
            case("b", &["quick", "zoned"]),
            case("c", &["auto"]),
            case("d", &["quick", "disabled"]),
        ];
        let pick = |groups: &[&str], exclude: &[&str]| {
            let sel = Selection {
                names: vec![],
                groups: groups.iter().map(|g| g.to_string()).collect(),
                exclude: exclude.iter().map(|g| g.to_string()).collect(),
            };
            names(&select(all.clone(), &sel).unwrap())
                .into_iter()
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(pick(&[], &[]), ["a", "b", "c"]);
        assert_eq!(pick(&["quick"], &[]), ["a", "b"]);
        assert_eq!(pick(&["quick"], &["zoned"]), ["a"]);
        assert_eq!(pick(&["disabled"], &[]), ["d"]);
    }

    #[test]
    fn unknown_name_is_an_error() {
        let sel = Selection {
            names: vec!["nope".into()],
            ..Selection::default()
        };
        assert!(select(vec![case("a", &[])], &sel).is_err());
    }

    #[test]
    fn unknown_group_and_empty_selection_are_errors() {
        let all = vec![case("a", &["quick"]), case("b", &["auto", "disabled"])];
        let err = |groups: &[&str], exclude: &[&str], names: &[&str]| {
            let sel = Selection {
                names: names.iter().map(|g| g.to_string()).collect(),
                groups: groups.iter().map(|g| g.to_string()).collect(),
                exclude: exclude.iter().map(|g| g.to_string()).collect(),
            };
            select(all.clone(), &sel).unwrap_err().to_string()
        };
        assert_eq!(
            err(&["nosuch"], &[], &[]),
            "no such group: nosuch (groups: auto, disabled, quick)"
        );
        assert_eq!(
            err(&[], &["quik"], &[]),
            "no such group: quik (groups: auto, disabled, quick)"
        );
        assert_eq!(
            err(&["quick"], &["quick"], &[]),
            "no tests selected: nothing matches -g quick -x quick \
             (tests in group disabled run only with -g disabled)"
        );
        assert!(err(&[], &[], &["b"]).contains("run only with -g disabled"));
        assert!(select(vec![], &Selection::default()).is_err());
    }

    #[test]
    fn shards_split_by_name_hash() {
        // The FNV-1a test vectors.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        let names: Vec<String> = (0..200).map(|i| format!("test-{i}")).collect();
        let shards: Vec<Shard> = (1..=3).map(|k| format!("{k}/3").parse().unwrap()).collect();
        let mut sizes = [0; 3];
        for name in &names {
            let owners: Vec<usize> = (0..3).filter(|&i| shards[i].holds(name)).collect();
            assert_eq!(owners.len(), 1, "{name} in {owners:?}");
            sizes[owners[0]] += 1;
        }
        assert!(sizes.iter().all(|&n| n > 40), "{sizes:?}");
        for bad in ["0/3", "4/3", "1/0", "1", "a/b", "1/2/3", "-1/2", ""] {
            let err = bad.parse::<Shard>().unwrap_err().to_string();
            assert!(err.starts_with(&format!("--shard {bad}: ")), "{err}");
        }
        assert_eq!("1/1".parse::<Shard>().unwrap().count, 1);
    }
}
