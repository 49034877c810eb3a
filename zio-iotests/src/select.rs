//! Test selection: narrows discovered tests by name and by `-g`/`-x`
//! groups, and drops the `disabled` group unless `-g` asks for it.

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
/// Fails if a named test does not exist, so that a typo is not mistaken
/// for a passing run.
pub fn select(tests: Vec<TestCase>, sel: &Selection) -> Result<Vec<TestCase>> {
    if let Some(unknown) = sel
        .names
        .iter()
        .find(|name| !tests.iter().any(|t| &t.name == *name))
    {
        bail!("no such test: {unknown} (a test needs both NAME and NAME.out)");
    }
    let want_disabled = sel.groups.iter().any(|g| g == DISABLED_GROUP);
    Ok(tests
        .into_iter()
        .filter(|t| sel.names.is_empty() || sel.names.contains(&t.name))
        .filter(|t| sel.groups.is_empty() || sel.groups.iter().any(|g| t.in_group(g)))
        .filter(|t| !sel.exclude.iter().any(|g| t.in_group(g)))
        .filter(|t| want_disabled || !t.in_group(DISABLED_GROUP))
        .collect())
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
}
