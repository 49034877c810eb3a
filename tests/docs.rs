//! The examples in `docs/*.md` (and README.md) are run and compared.
//!
//! Every fenced ```` ```console ```` block is a session: lines starting with
//! `$ ` are commands, the lines after each are its exact output (stdout and
//! stderr merged). Each block runs in a fresh, empty directory, with the
//! freshly built zio first on PATH, so `$ truncate -s 64M disk.img` and
//! `$ zio create ...` can set up what later lines use. Both the expected
//! and the actual output go through iotests' `_filter_zio` (taken from
//! `iotests/common.rc`), so timings and rates never matter.
//!
//! Commands may start with `zio`, `truncate` or `printf` (for `printf ... |
//! zio ...`): the examples stay about zio and never touch the host.

#![deny(unsafe_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const ZIO: &str = env!("CARGO_BIN_EXE_zio");

/// Pages that have their own test below.
const PAGES: &[&str] = &[
    "commands.md",
    "drivers.md",
    "zoned-image.md",
    "runner.md",
    "vm-tier.md",
    "semantics.md",
];

const ALLOWED: &[&str] = &["zio", "truncate", "printf"];

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One `$ ` line of a console block and the output written under it.
#[derive(Debug)]
struct Step {
    line: usize,
    command: String,
    expected: String,
}

/// A ```console block: its first line number and its steps.
#[derive(Debug)]
struct Block {
    line: usize,
    steps: Vec<Step>,
}

/// The console blocks of a Markdown text.
fn console_blocks(text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut current: Option<Block> = None;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let trimmed = raw.trim_start();
        match &mut current {
            None => {
                if trimmed.trim_end() == "```console" {
                    current = Some(Block {
                        line: n,
                        steps: Vec::new(),
                    });
                }
            }
            Some(block) => {
                if trimmed.starts_with("```") {
                    blocks.extend(current.take());
                } else if let Some(cmd) = raw.strip_prefix("$ ") {
                    block.steps.push(Step {
                        line: n,
                        command: cmd.to_string(),
                        expected: String::new(),
                    });
                } else {
                    let step = block
                        .steps
                        .last_mut()
                        .unwrap_or_else(|| panic!("line {n}: output before the first `$ ` line"));
                    step.expected.push_str(raw);
                    step.expected.push('\n');
                }
            }
        }
    }
    assert!(current.is_none(), "a ```console block is not closed");
    blocks
}

/// The `_filter_zio` function, as defined in iotests/common.rc.
fn filter_zio_definition() -> String {
    let rc = fs::read_to_string(manifest_dir().join("iotests/common.rc")).unwrap();
    let start = rc
        .find("\n_filter_zio()\n")
        .expect("_filter_zio in common.rc");
    let body = &rc[start + 1..];
    let end = body.find("\n}\n").expect("end of _filter_zio") + 3;
    body[..end].to_string()
}

/// Runs `script` with bash in `dir`, zio first on PATH, both streams
/// through `_filter_zio`.
fn bash_filtered(dir: &Path, script: &str) -> String {
    let bin_dir = Path::new(ZIO).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let full = format!(
        "{}\n{{\n{script}\n}} 2>&1 | _filter_zio\n",
        filter_zio_definition()
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(full)
        .current_dir(dir)
        .env("PATH", path)
        .env("LC_ALL", "C")
        .env("NO_COLOR", "1")
        .env_remove("XDG_STATE_HOME")
        .stdin(Stdio::null())
        .output()
        .expect("cannot run bash");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The expected text through `_filter_zio` (a here-document keeps it
/// byte for byte).
fn filter_text(dir: &Path, text: &str) -> String {
    if text.is_empty() {
        return String::new();
    }
    let marker = "ZIO_DOCS_END_OF_EXPECTED_OUTPUT";
    bash_filtered(dir, &format!("cat <<'{marker}'\n{text}{marker}"))
}

/// Runs every console block of `file` and returns the mismatches.
fn check_file(file: &Path) -> Vec<String> {
    let text =
        fs::read_to_string(file).unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
    let label = file
        .strip_prefix(manifest_dir())
        .unwrap_or(file)
        .display()
        .to_string();
    let stem = label.replace(['/', '.'], "-");
    let mut problems = Vec::new();
    for (b, block) in console_blocks(&text).iter().enumerate() {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("docs")
            .join(format!("{stem}-{b}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        if block.steps.is_empty() {
            problems.push(format!(
                "{label}:{}: console block without `$ `",
                block.line
            ));
        }
        for step in &block.steps {
            let first = step.command.split_whitespace().next().unwrap_or("");
            if !ALLOWED.contains(&first) {
                problems.push(format!(
                    "{label}:{}: `{}`: examples may only run {ALLOWED:?}",
                    step.line, step.command
                ));
                continue;
            }
            let actual = bash_filtered(&dir, &step.command);
            let expected = filter_text(&dir, &step.expected);
            if actual != expected {
                let diff = similar::TextDiff::from_lines(&expected, &actual)
                    .unified_diff()
                    .header("documented", "actual")
                    .to_string();
                problems.push(format!("{label}:{}: $ {}\n{diff}", step.line, step.command));
            }
        }
        let _ = fs::remove_dir_all(&dir);
    }
    problems
}

/// Checks `path` (relative to the crate) and fails with every mismatch.
fn check(path: &str, must_have_examples: bool) {
    let file = manifest_dir().join(path);
    if must_have_examples {
        let text = fs::read_to_string(&file).unwrap();
        assert!(
            !console_blocks(&text).is_empty(),
            "{path} has no ```console example"
        );
    }
    let problems = check_file(&file);
    assert!(
        problems.is_empty(),
        "{} example(s) in {path} do not match (- documented, + actual):\n\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn commands_md() {
    check("docs/commands.md", true);
}

#[test]
fn drivers_md() {
    check("docs/drivers.md", true);
}

#[test]
fn zoned_image_md() {
    check("docs/zoned-image.md", true);
}

#[test]
fn runner_md() {
    check("docs/runner.md", false);
}

#[test]
fn vm_tier_md() {
    check("docs/vm-tier.md", false);
}

#[test]
fn semantics_md() {
    check("docs/semantics.md", true);
}

/// README.md's ```console blocks, if it has any.
#[test]
fn readme_md() {
    check("README.md", false);
}

/// Any other page in docs/ (written later, or by someone else) is checked
/// the same way, so no page's examples go unchecked.
#[test]
fn other_docs_pages() {
    let mut problems = Vec::new();
    for entry in fs::read_dir(manifest_dir().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".md") && !PAGES.contains(&name.as_str()) {
            problems.extend(check_file(&path));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_parser_reads_blocks() {
    let md =
        "text\n```console\n$ zio -c length\n64 MiB\n$ truncate -s 1M x\n```\n```sh\n$ no\n```\n";
    let blocks = console_blocks(md);
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].line, 2);
    let steps = &blocks[0].steps;
    assert_eq!(steps.len(), 2);
    assert_eq!(
        (steps[0].line, steps[0].command.as_str()),
        (3, "zio -c length")
    );
    assert_eq!(steps[0].expected, "64 MiB\n");
    assert_eq!(steps[1].expected, "");
}

#[test]
fn the_filter_hides_timings() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    assert_eq!(
        filter_text(
            dir,
            "4 KiB, 1 ops; 00.00 sec (195.312 MiB/sec and 50000.0000 ops/sec)\n"
        ),
        "4 KiB, X ops; XX:XX:XX.X (XXX YYY/sec and XXX ops/sec)\n"
    );
}
