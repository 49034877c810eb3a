//! `--new NAME`: writes a skeleton iotest `NAME` into the tests directory,
//! a script that runs as it is (so `--bless NAME` can write its `NAME.out`
//! at once) for the user to edit. A test in group `realdev` gets the
//! header and helpers of a real-device test; any other an image file.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::discover::is_candidate_name;
use super::vm::REALDEV_GROUP;

/// The groups of a new test when `-g` names none.
pub const DEFAULT_GROUPS: &[&str] = &["quick", "auto"];

/// Writes the skeleton of test `name` in groups `groups` into `dir` and
/// returns its path. Refuses a name that is taken (script or `.out`) or
/// that is no usable test name, and group names that would not survive
/// the `# group:` line.
pub fn write_skeleton(dir: &Path, name: &str, groups: &[String]) -> Result<PathBuf> {
    check_name(name)?;
    if let Some(bad) = groups.iter().find(|g| !is_word(g)) {
        bail!("--new: bad group name {bad:?} (letters, digits, _ and - only)");
    }
    let script = dir.join(name);
    for taken in [script.clone(), dir.join(format!("{name}.out"))] {
        if taken.symlink_metadata().is_ok() {
            bail!("--new {name}: {} exists already", taken.display());
        }
    }
    let groups: Vec<&str> = if groups.is_empty() {
        DEFAULT_GROUPS.to_vec()
    } else {
        groups.iter().map(String::as_str).collect()
    };
    let text = skeleton(&groups);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o755)
        .open(&script)
        .with_context(|| format!("cannot create {}", script.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", script.display()))?;
    Ok(script)
}

/// A test name: what discovery takes for a script and the VM tier can put
/// in its word list (letters, digits, `._+-`, not starting with `.`), and
/// no `@` (that separates a kernel: `NAME@6.12`).
fn check_name(name: &str) -> Result<()> {
    let chars_ok = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c));
    if name.is_empty() || name.len() > 100 || !chars_ok || !is_candidate_name(name) {
        bail!(
            "--new: bad test name {name:?} (letters, digits and ._+- only, not starting with . or ending in .out)"
        );
    }
    Ok(())
}

fn is_word(group: &str) -> bool {
    !group.is_empty()
        && group
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c))
}

/// The script of a new test in `groups`.
fn skeleton(groups: &[&str]) -> String {
    let mut text = format!("#!/usr/bin/env bash\n# group: {}\n", groups.join(" "));
    if groups.contains(&REALDEV_GROUP) {
        text.push_str(
            "# nullb: zoned=1 zone_size=64 zone_nr_conv=1 gb=1\n\
             #\n\
             # TODO: say what this test checks. It runs against an emulated zoned\n\
             # device on the host and against /dev/nullb0 in the VM (--vm); see the\n\
             # realdev part of common.rc for the header lines and helpers.\n\
             . ./common.rc\n\
             _zoned_dev\n\
             _reset_dev\n\
             \n\
             echo \"== write at the write pointer of zone 1, read it back\"\n\
             _zio \"${ZDEV[@]}\" -c 'write -P 0xab 64M 4k' -c 'zrp 64M 1' -c 'read -P 0xab 64M 4k'\n\
             \n\
             _done\n",
        );
    } else {
        text.push_str(
            "#\n\
             # TODO: say what this test checks. See docs/runner.md (Writing a test)\n\
             # and the helpers in common.rc.\n\
             . ./common.rc\n\
             _make_test_img 64M\n\
             \n\
             echo \"== write a pattern, read it back\"\n\
             _zio -f raw -c 'write -P 0xab 0 64k' -c 'read -P 0xab 0 64k' \"$TEST_IMG\"\n\
             \n\
             _done\n",
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["my-test", "zone_append.2", "a+b", "X1"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in [
            "", ".hidden", "a b", "a/b", "x.out", "x@6.12", "it's", "back~",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(!is_word("a b") && !is_word("") && is_word("quick"));
    }

    #[test]
    fn realdev_tests_get_a_device_header() {
        assert!(skeleton(&["quick"]).starts_with("#!/usr/bin/env bash\n# group: quick\n#\n"));
        let realdev = skeleton(&["realdev", "quick"]);
        assert!(realdev.contains("# group: realdev quick\n# nullb: zoned=1"));
        assert!(realdev.contains("_zoned_dev\n"));
    }
}
