//! Test discovery: finds the `NAME` + `NAME.out` pairs in a tests directory
//! and reads each script's `# group:` line. Nothing here runs a test.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use walkdir::WalkDir;

/// One golden-output test: a bash script and the output it must produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestCase {
    /// File name of the script, e.g. `001` or `zone-append`.
    pub name: String,
    /// Path of the script.
    pub script: PathBuf,
    /// Path of the expected output, `<script>.out`.
    pub expected: PathBuf,
    /// Groups from the script's first `# group:` line, in file order.
    pub groups: Vec<String>,
}

impl TestCase {
    /// The script's file name: the test's name without the `@KERNEL` of a
    /// run on another kernel (see `vm::instances`).
    pub fn script_name(&self) -> &str {
        self.name.split_once('@').map_or(&self.name, |(n, _)| n)
    }

    /// The kernel series this run is for: the part after `@` of its name,
    /// else the default (6.1).
    pub fn kernel(&self) -> &str {
        self.name
            .split_once('@')
            .map_or(super::vm::DEFAULT_KERNEL, |(_, k)| k)
    }

    /// Where `--bless` writes this run's output: `NAME.out` for the run on
    /// the test's first kernel (the first of its `# kernels:` line, else
    /// the default), so a test for 6.12 alone keeps a plain `NAME.out`;
    /// any other run its own `NAME.out.KERNEL` (so blessing it never
    /// rewrites the first kernel's `NAME.out`).
    pub fn bless_path(&self) -> PathBuf {
        let first = fs::read_to_string(&self.script)
            .ok()
            .and_then(|s| super::vm::kernels(&s).ok())
            .and_then(|k| k.into_iter().next())
            .unwrap_or_else(|| super::vm::DEFAULT_KERNEL.to_string());
        if self.kernel() == first {
            return self.expected.clone();
        }
        let own = format!("{}.out.{}", self.script_name(), self.kernel());
        self.expected.with_file_name(own)
    }

    /// True if the test lists `group` on its `# group:` line.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

/// Lists the tests in `dir`, sorted by name.
///
/// A regular file `NAME` is a test when `NAME.out` exists next to it; every
/// other file (`common.rc`, helpers, `*.out`, dot files) and every
/// subdirectory is ignored.
pub fn discover(dir: &Path) -> Result<Vec<TestCase>> {
    if !dir.is_dir() {
        bail!(
            "tests directory {} does not exist or is not a directory",
            dir.display()
        );
    }
    let mut tests = Vec::new();
    for entry in WalkDir::new(dir).min_depth(1).max_depth(1) {
        let entry =
            entry.with_context(|| format!("cannot read tests directory {}", dir.display()))?;
        let Some(name) = entry.file_name().to_str() else {
            continue;
        };
        if !is_candidate_name(name) || !entry.path().is_file() {
            continue;
        }
        let expected = dir.join(format!("{name}.out"));
        if !expected.is_file() {
            continue;
        }
        let script = entry.path().to_path_buf();
        let text = fs::read(&script)
            .with_context(|| format!("cannot read test script {}", script.display()))?;
        tests.push(TestCase {
            name: name.to_string(),
            groups: parse_groups(&String::from_utf8_lossy(&text)),
            script,
            expected,
        });
    }
    tests.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(tests)
}

/// The test `name` in `dir` whose script exists but whose `NAME.out` does
/// not yet (for `--bless NAME`, which writes it); None if there is no such
/// script, or if `name` is not a test name.
pub fn without_out(dir: &Path, name: &str) -> Result<Option<TestCase>> {
    let script = dir.join(name);
    let expected = dir.join(format!("{name}.out"));
    if !is_candidate_name(name) || name.contains('/') || !script.is_file() || expected.exists() {
        return Ok(None);
    }
    let text = fs::read(&script)
        .with_context(|| format!("cannot read test script {}", script.display()))?;
    Ok(Some(TestCase {
        name: name.to_string(),
        groups: parse_groups(&String::from_utf8_lossy(&text)),
        script,
        expected,
    }))
}

/// Names that can never be a test script: dot files, editor backups and
/// the runner's own output files.
pub fn is_candidate_name(name: &str) -> bool {
    !(name.starts_with('.')
        || name.ends_with('~')
        || name.ends_with(".out")
        || name.ends_with(".out.bad"))
}

/// Groups named on the first line starting with `# group:`; none if absent.
pub fn parse_groups(script: &str) -> Vec<String> {
    script
        .lines()
        .find_map(|line| line.strip_prefix("# group:"))
        .map(|rest| rest.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_come_from_first_group_line() {
        let script = "#!/bin/bash\n# group: quick zoned\n# group: other\n";
        assert_eq!(parse_groups(script), ["quick", "zoned"]);
        assert!(parse_groups("#!/bin/bash\necho hi\n").is_empty());
    }

    #[test]
    fn output_files_are_not_candidates() {
        assert!(is_candidate_name("001"));
        assert!(!is_candidate_name("001.out"));
        assert!(!is_candidate_name("001.out.bad"));
        assert!(!is_candidate_name(".hidden"));
    }

    #[test]
    fn a_run_on_another_kernel_blesses_its_own_out_file() {
        let case = |name: &str, expected: &str| TestCase {
            name: name.into(),
            script: PathBuf::from("/t/x"),
            expected: PathBuf::from(expected),
            groups: vec![],
        };
        assert_eq!(case("x", "/t/x.out").bless_path(), Path::new("/t/x.out"));
        // No file of its own yet: the run compares with the default one and
        // blesses its own.
        let other = case("x@6.12", "/t/x.out");
        assert_eq!(other.bless_path(), Path::new("/t/x.out.6.12"));
    }

    #[test]
    fn a_test_for_one_later_kernel_blesses_its_plain_out_file() {
        let dir = std::env::temp_dir().join(format!("zio-bless-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let script = dir.join("x");
        fs::write(&script, "#!/bin/bash\n# group: realdev\n# kernels: 6.12\n").unwrap();
        let case = TestCase {
            name: "x@6.12".into(),
            script,
            expected: dir.join("x.out"),
            groups: vec![],
        };
        let path = case.bless_path();
        let _ = fs::remove_dir_all(&dir);
        assert_eq!(path, dir.join("x.out"));
    }
}
