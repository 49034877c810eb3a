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

/// Extensions of the repository's own files that docs and comments name.
const REPO_EXTS: &[&str] = &[".md", ".rs", ".sh", ".py", ".toml", ".json", ".rc", ".out"];

/// Path-like words of `text` naming a repository file: a word ending in one
/// of [`REPO_EXTS`], or starting with one of the repository's directories.
/// URLs, absolute and home paths (the host's, not ours), placeholders in
/// capitals (`NAME.out`) and other projects' files (after a possessive:
/// "QEMU's block/file-posix.c", "qemu-iotests' tests/zoned", or "own") are
/// left out.
fn named_files(text: &str) -> Vec<String> {
    const DIRS: &[&str] = &[
        "src/",
        "docs/",
        "iotests/",
        "bench/",
        "vm/",
        "tests/",
        "zio-block/",
        "zio-iotests/",
        "fuzz/",
        ".ci/",
    ];
    let is_word = |c: char| c.is_ascii_alphanumeric() || "._/-:".contains(c);
    let mut out = Vec::new();
    let mut prev = "";
    for token in text.split_whitespace() {
        let external = prev.ends_with("'s") || prev.ends_with('\'') || prev == "own";
        if !matches!(token, "#" | "//" | "//!" | "///") {
            prev = token;
        }
        if external {
            continue;
        }
        for word in token.split(|c: char| !is_word(c)) {
            let word = word
                .trim_end_matches(['.', '/', ':'])
                .trim_start_matches("./");
            if word.is_empty() || word.starts_with('/') || word.contains(':') || word.contains("..")
            {
                continue;
            }
            let named = REPO_EXTS
                .iter()
                .any(|e| word.ends_with(e) && word.len() > e.len())
                || DIRS
                    .iter()
                    .any(|d| word.starts_with(d) && word.len() > d.len());
            let placeholder = word
                .split(['/', '.', '-'])
                .any(|p| p.len() > 1 && p.chars().all(|c| c.is_ascii_uppercase()));
            if named && !placeholder {
                out.push(word.to_string());
            }
        }
    }
    out
}

/// Every file of the repository (not target/ or .git/), relative paths.
fn repo_files(root: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        for e in fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            let name = e.file_name();
            if name == "target" || name == ".git" {
                continue;
            }
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out
}

/// The prose of `file` that names other files: all of a Markdown page,
/// the leading comment of an iotest, the `//!` and `///` lines of Rust.
fn doc_text(file: &Path, text: &str) -> Option<String> {
    let name = file.to_string_lossy();
    if name.ends_with(".md") {
        return Some(text.to_string());
    }
    if name.ends_with(".rs") {
        let lines = text.lines().map(str::trim_start);
        let docs: Vec<&str> = lines.filter(|l| l.starts_with("//")).collect();
        return Some(docs.join("\n"));
    }
    let in_iotests = file.parent() == Some(Path::new("iotests"));
    if in_iotests && !name.ends_with(".out") && text.starts_with("#!") {
        let header: Vec<&str> = text.lines().take_while(|l| l.starts_with('#')).collect();
        return Some(header.join("\n"));
    }
    None
}

#[test]
fn docs_and_test_headers_name_files_that_exist() {
    let root = manifest_dir();
    let files = repo_files(&root);
    let mut missing = Vec::new();
    for file in &files {
        let Ok(text) = fs::read_to_string(root.join(file)) else {
            continue;
        };
        let Some(doc) = doc_text(file, &text) else {
            continue;
        };
        let here = file.parent().unwrap_or(Path::new(""));
        // The crate a file belongs to: its first path component when that
        // is a crate of the workspace, else the root.
        let krate = file
            .components()
            .next()
            .map(|c| Path::new(c.as_os_str()).to_path_buf())
            .filter(|c| root.join(c).join("Cargo.toml").is_file())
            .unwrap_or_default();
        for name in named_files(&doc) {
            let found = if name.contains('/') {
                [Path::new(""), here, &krate, Path::new("iotests")]
                    .iter()
                    .any(|base| root.join(base).join(&name).exists())
            } else {
                files.iter().any(|f| f.file_name() == Some(name.as_ref()))
            };
            if !found {
                missing.push(format!(
                    "{}: names {name}, which does not exist",
                    file.display()
                ));
            }
        }
    }
    assert!(missing.is_empty(), "\n{}", missing.join("\n"));
}

#[test]
fn named_files_finds_paths_and_skips_the_host_and_placeholders() {
    let text = "see zoned-semantics.md and `src/blocklayer/zoned.rs`, /dev/nullb0, \
                ~/.bashrc, https://x.org/a.md, NAME.out, QEMU's block/file-posix.rs, \
                qemu-iotests'\n# tests/zoned, [x](iotests/zoned).";
    assert_eq!(
        named_files(text),
        [
            "zoned-semantics.md",
            "src/blocklayer/zoned.rs",
            "iotests/zoned"
        ]
    );
}

/// The README's first screen is what a new user does first: one command
/// that installs zio on PATH, zio on its embedded default, and the one test
/// command (the one `.ci/run` ends with), in that order, in the first code
/// block, within the first 40 lines.
#[test]
fn readme_first_screen_installs_runs_and_tests() {
    let text = fs::read_to_string(manifest_dir().join("README.md")).unwrap();
    let head: Vec<&str> = text.lines().take(40).collect();
    let open = head
        .iter()
        .position(|l| l.starts_with("```"))
        .expect("a code block on the README's first screen");
    let close = head[open + 1..]
        .iter()
        .position(|l| l.starts_with("```"))
        .map(|i| open + 1 + i)
        .expect("the first code block ends on the first screen");
    let commands: Vec<&str> = head[open + 1..close]
        .iter()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(
        commands,
        ["cargo install --locked --path .", "zio", "cargo test"],
        "the README's first code block"
    );
    let ci = fs::read_to_string(manifest_dir().join(".ci/run")).unwrap();
    assert!(
        ci.lines().any(|l| l.trim() == "cargo test"),
        ".ci/run runs the README's test command"
    );
}
