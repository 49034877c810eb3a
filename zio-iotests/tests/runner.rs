//! Integration tests of the `zio-iotests` runner binary against the tiny
//! fixture suites in `tests/runner-fixtures/`.
//!
//! Every fixture sources the real `iotests/common.rc` through a shim
//! (`ZIO_COMMON_RC`), so these tests exercise it too. Each test gets its
//! own scratch root, and tests that modify a suite work on a copy.

#![deny(unsafe_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

const RUNNER: &str = env!("CARGO_BIN_EXE_zio-iotests");

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The workspace root, where the real `iotests/` lives.
fn workspace_dir() -> PathBuf {
    manifest_dir().parent().unwrap().to_path_buf()
}

/// The CLI under test: a stub, since the runner only exports it as `$ZIO`.
fn cli() -> PathBuf {
    manifest_dir().join("tests/fake-cli")
}

fn fixture(name: &str) -> PathBuf {
    manifest_dir().join("tests/runner-fixtures").join(name)
}

/// A fresh, empty directory for test `name`.
fn temp_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("runner-tests")
        .join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// A copy of fixture suite `suite` under `dest`.
fn copy_suite(suite: &str, dest: &Path) -> PathBuf {
    let to = dest.join(suite);
    fs::create_dir_all(&to).unwrap();
    for entry in fs::read_dir(fixture(suite)).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
    to
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

/// `program` with the environment and cwd the runner is tested under.
fn command(program: &str) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(manifest_dir())
        .env("ZIO_COMMON_RC", workspace_dir().join("iotests/common.rc"))
        .env_remove("CI")
        .env_remove("ZIO_IOTESTS_LAUNCHER");
    cmd
}

fn finish(mut cmd: Command) -> Run {
    let start = Instant::now();
    let out = cmd.output().expect("cannot start zio-iotests");
    Run {
        code: out.status.code().expect("runner killed by a signal"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
        elapsed: start.elapsed(),
    }
}

/// Runs the runner on suite directory `dir` with scratch root `scratch`.
fn run_env(dir: &Path, scratch: &Path, args: &[&str], envs: &[(&str, &str)]) -> Run {
    let mut cmd = command(RUNNER);
    cmd.envs(envs.iter().copied())
        .arg("--dir")
        .arg(dir)
        .arg("--scratch")
        .arg(scratch)
        .arg("--zio")
        .arg(cli())
        .args(args);
    finish(cmd)
}

fn run(dir: &Path, scratch: &Path, args: &[&str]) -> Run {
    run_env(dir, scratch, args, &[])
}

/// One test's human result line, e.g.
/// `ok        pass       0.0s (was 0.1s)  reason`, taken apart.
#[derive(Debug)]
struct ResultLine {
    status: String,
    secs: f64,
    /// The `(was 0.1s)` column: the test's time when it last ran.
    was: Option<f64>,
    reason: String,
}

/// `12.3s` as seconds.
fn secs_of(word: &str, line: &str) -> f64 {
    word.strip_suffix('s')
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad time {word:?} in {line:?}"))
}

/// The result line of test `name` in a human report.
fn result_line(stdout: &str, name: &str) -> ResultLine {
    let line = stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no result line for {name} in:\n{stdout}"));
    assert!(!line.contains('\x1b'), "colour in a pipe: {line:?}");
    let mut words = line.split_whitespace().skip(1).peekable();
    let mut status = words.next().unwrap().to_string();
    if status == "not" {
        assert_eq!(words.next(), Some("run"), "{line:?}");
        status = "not run".into();
    }
    let secs = secs_of(words.next().expect("a time"), line);
    let was = words.next_if_eq(&"(was").map(|_| {
        let word = words.next().expect("a previous time");
        secs_of(word.strip_suffix(')').expect("(was Ns)"), line)
    });
    ResultLine {
        status,
        secs,
        was,
        reason: words.collect::<Vec<_>>().join(" "),
    }
}

fn status_of(stdout: &str, name: &str) -> String {
    result_line(stdout, name).status
}

#[test]
fn passing_suite_passes_and_exits_0() {
    let scratch = temp_dir("passing");
    let r = run(&fixture("pass"), &scratch, &["-j", "1"]);
    assert_eq!(r.code, 0, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    for name in ["ok", "helpers", "trailing_ws"] {
        assert_eq!(status_of(&r.stdout, name), "pass", "{}", r.stdout);
    }
    assert!(!r.stdout.contains("helper.sh"), "helper.sh is not a test");
    assert!(!r.stdout.contains("common.rc"));
    assert!(
        r.stdout
            .ends_with("Not run: skipped\nPassed all 3 iotests\n")
    );
    // Passing tests leave nothing behind by default.
    assert!(!scratch.join("ok").exists());
    assert!(!scratch.join("ok.out.bad").exists());
    assert!(!scratch.join("ok.log").exists());
}

#[test]
fn keep_keeps_scratch_dirs() {
    let scratch = temp_dir("keep");
    let r = run(&fixture("pass"), &scratch, &["--keep", "helpers"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert_eq!(
        fs::metadata(scratch.join("helpers/t.img")).unwrap().len(),
        2 << 20
    );
}

#[test]
fn notrun_reports_reason_and_is_not_counted() {
    let scratch = temp_dir("notrun");
    let r = run(&fixture("pass"), &scratch, &["skipped"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    let line = result_line(&r.stdout, "skipped");
    assert_eq!(line.status, "not run");
    assert_eq!(line.reason, "needs a zoned device");
    assert!(
        r.stdout
            .ends_with("Not run: skipped\nPassed all 0 iotests\n")
    );
}

#[test]
fn output_mismatch_fails_with_diff_bad_file_and_rerun() {
    let scratch = temp_dir("mismatch");
    let dir = fixture("mixed");
    let r = run(&dir, &scratch, &["bad_output"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let line = result_line(&r.stdout, "bad_output");
    assert_eq!(line.status, "fail");
    assert_eq!(line.reason, "output mismatch");

    let bad = scratch.join("bad_output.out.bad");
    // Paths below the cwd (the manifest dir) are shown relative to it.
    let bad_label = bad.strip_prefix(manifest_dir()).unwrap_or(&bad);
    let headers = format!(
        "\n--- tests/runner-fixtures/mixed/bad_output.out\n+++ {}\n",
        bad_label.display()
    );
    assert!(
        r.stdout.contains(&headers),
        "{headers}\nnot in:\n{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("\n line one\n-expected line\n+actual line\n line three\n")
    );
    let actual = fs::read_to_string(&bad).unwrap();
    assert!(actual.contains("actual line\n"), "{actual}");
    assert!(
        !dir.join("bad_output.out.bad").exists(),
        "must not write into the suite"
    );
    assert!(
        r.stdout
            .ends_with("Failures: bad_output\nFailed 1 of 1 iotests\n")
    );

    // The rerun hint is a working command that runs just this test.
    let rerun = r
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("  rerun: "))
        .expect("rerun line");
    assert!(rerun.ends_with(" bad_output"), "{rerun}");
    let scratch2 = temp_dir("mismatch-rerun");
    let mut cmd = command("sh");
    cmd.arg("-c")
        .arg(format!("{rerun} --scratch \"$1\""))
        .arg("sh")
        .arg(&scratch2);
    let again = finish(cmd);
    assert_eq!(again.code, 1, "{}\n{}", again.stdout, again.stderr);
    assert!(
        again.stdout.ends_with("Failed 1 of 1 iotests\n"),
        "{}",
        again.stdout
    );
}

#[test]
fn nonzero_exit_fails_with_status() {
    let scratch = temp_dir("exit-status");
    let r = run(&fixture("mixed"), &scratch, &["bad_exit"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let line = result_line(&r.stdout, "bad_exit");
    assert_eq!(line.status, "fail");
    assert_eq!(line.reason, "exit status 3");
    assert!(!r.stdout.contains("\n--- "), "output matched, so no diff");
}

#[test]
fn trailing_whitespace_is_ignored() {
    let scratch = temp_dir("trailing");
    let script = fs::read_to_string(fixture("pass/trailing_ws")).unwrap();
    assert!(
        script.contains("spaces   \\n"),
        "fixture must print trailing blanks"
    );
    let r = run(&fixture("pass"), &scratch, &["trailing_ws"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert_eq!(status_of(&r.stdout, "trailing_ws"), "pass");
}

#[test]
fn bless_rewrites_out_and_refuses_under_ci() {
    let tmp = temp_dir("bless");
    let scratch = tmp.join("scratch");
    let dir = copy_suite("mixed", &tmp);
    let out_file = dir.join("bad_output.out");
    let before = fs::read_to_string(&out_file).unwrap();

    let refused = run_env(&dir, &scratch, &["--bless"], &[("CI", "true")]);
    assert_eq!(refused.code, 2);
    assert!(
        refused.stderr.contains("--bless refused"),
        "{}",
        refused.stderr
    );
    assert_eq!(refused.stderr.lines().count(), 1, "{}", refused.stderr);
    assert!(refused.stdout.is_empty());
    assert_eq!(fs::read_to_string(&out_file).unwrap(), before);

    let blessed = run(&dir, &scratch, &["--bless", "bad_output"]);
    assert_eq!(blessed.code, 0, "{}", blessed.stdout);
    assert_eq!(result_line(&blessed.stdout, "bad_output").reason, "blessed");
    assert!(
        blessed.stdout.contains("\n-expected line\n+actual line\n"),
        "diff still shown"
    );
    let after = fs::read_to_string(&out_file).unwrap();
    assert_eq!(after, before.replace("expected line", "actual line"));

    let plain = run(&dir, &scratch, &["bad_output"]);
    assert_eq!(plain.code, 0, "{}", plain.stdout);

    // A test that exits non-zero is never blessed.
    let exit_out = fs::read_to_string(dir.join("bad_exit.out")).unwrap();
    let all = run(&dir, &scratch, &["--bless"]);
    assert_eq!(all.code, 1, "{}", all.stdout);
    assert_eq!(status_of(&all.stdout, "bad_exit"), "fail");
    assert_eq!(
        fs::read_to_string(dir.join("bad_exit.out")).unwrap(),
        exit_out
    );
}

fn listed(dir: &Path, scratch: &Path, args: &[&str]) -> String {
    let mut all = vec!["-n"];
    all.extend_from_slice(args);
    let r = run(dir, scratch, &all);
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.stdout
}

#[test]
fn dry_run_and_group_selection() {
    let scratch = temp_dir("groups");
    let dir = fixture("mixed");
    assert_eq!(listed(&dir, &scratch, &[]), "bad_exit\nbad_output\ngood\n");
    assert_eq!(
        listed(&dir, &scratch, &["-g", "quick"]),
        "bad_output\ngood\n"
    );
    assert_eq!(
        listed(&dir, &scratch, &["-g", "auto"]),
        "bad_exit\nbad_output\n"
    );
    assert_eq!(
        listed(&dir, &scratch, &["-g", "quick", "-x", "auto"]),
        "good\n"
    );
    assert_eq!(
        listed(&dir, &scratch, &["-g", "quick,auto"]),
        "bad_exit\nbad_output\ngood\n"
    );
    assert_eq!(listed(&dir, &scratch, &["-x", "quick,auto"]), "");
    assert_eq!(
        listed(&dir, &scratch, &["good", "bad_exit"]),
        "bad_exit\ngood\n"
    );
    // -n runs nothing.
    assert!(fs::read_dir(&scratch).unwrap().next().is_none());
}

#[test]
fn disabled_group_only_runs_when_named() {
    let scratch = temp_dir("disabled");
    let dir = fixture("mixed");
    let r = run(&dir, &scratch, &["-g", "quick"]);
    assert!(!r.stdout.contains("off"), "{}", r.stdout);
    assert_eq!(listed(&dir, &scratch, &["-g", "disabled"]), "off\n");
    assert_eq!(listed(&dir, &scratch, &["off"]), "");
}

#[test]
fn parallel_jobs_overlap() {
    let scratch = temp_dir("parallel");
    let dir = fixture("slow");
    let par = run(&dir, &scratch, &["-j", "2"]);
    assert_eq!(par.code, 0, "{}", par.stdout);
    assert!(par.stdout.ends_with("Passed all 2 iotests\n"));
    assert!(
        par.elapsed < Duration::from_millis(1800),
        "-j 2 took {:?}",
        par.elapsed
    );
    let serial = run(&dir, &scratch, &["-j", "1"]);
    assert_eq!(serial.code, 0, "{}", serial.stdout);
    assert!(
        serial.elapsed >= Duration::from_secs(2),
        "-j 1 took {:?}",
        serial.elapsed
    );
}

#[test]
fn tap_output() {
    let scratch = temp_dir("tap");
    let r = run(&fixture("pass"), &scratch, &["--tap"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(
        r.stdout
            .starts_with("TAP version 13\n1..4\nok 1 - helpers\nok 2 - ok\n")
    );
    assert!(
        r.stdout
            .contains("\nok 3 - skipped # SKIP needs a zoned device\nok 4 - trailing_ws\n")
    );

    let r = run(
        &fixture("mixed"),
        &scratch,
        &["--tap", "bad_output", "good"],
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stdout
            .starts_with("TAP version 13\n1..2\nnot ok 1 - bad_output\n")
    );
    assert!(r.stdout.contains("\n# -expected line\n# +actual line\n"));
    assert!(r.stdout.contains("\nok 2 - good\n"));
    for line in r.stdout.lines() {
        assert!(
            ["TAP version", "1..", "ok ", "not ok ", "#"]
                .iter()
                .any(|p| line.starts_with(p)),
            "not a TAP line: {line:?}"
        );
    }
}

#[test]
fn timeout_kills_the_process_group() {
    let scratch = temp_dir("timeout");
    let r = run(&fixture("hang"), &scratch, &["--timeout", "1"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.elapsed < Duration::from_secs(10), "took {:?}", r.elapsed);
    let line = result_line(&r.stdout, "hang");
    assert_eq!(line.status, "fail");
    assert_eq!(line.reason, "timed out after 1 s");
    assert!(line.secs >= 1.0, "{line:?}");

    // The script's background child was in its process group: gone too.
    let pid = fs::read_to_string(scratch.join("hang/bg.pid")).unwrap();
    let cmdline = Path::new("/proc").join(pid.trim()).join("cmdline");
    let deadline = Instant::now() + Duration::from_secs(3);
    while fs::read(&cmdline).is_ok_and(|c| c.starts_with(b"sleep")) {
        assert!(Instant::now() < deadline, "background sleep {pid} survived");
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn failed_reruns_only_last_failures() {
    let tmp = temp_dir("failed");
    let scratch = tmp.join("scratch");
    let dir = copy_suite("mixed", &tmp);
    assert_eq!(run(&dir, &scratch, &[]).code, 1);
    assert_eq!(
        listed(&dir, &scratch, &["--failed"]),
        "bad_exit\nbad_output\n"
    );

    let r = run(&dir, &scratch, &["--failed"]);
    assert!(!r.stdout.contains("good"), "{}", r.stdout);
    assert!(
        r.stdout.ends_with("Failed 2 of 2 iotests\n"),
        "{}",
        r.stdout
    );

    // Once bad_output passes it is forgotten; bad_exit is still remembered.
    assert_eq!(run(&dir, &scratch, &["--bless", "bad_output"]).code, 0);
    assert_eq!(listed(&dir, &scratch, &["--failed"]), "bad_exit\n");
}

#[test]
fn usage_and_setup_errors_exit_2() {
    let scratch = temp_dir("errors");
    let check = |r: Run, what: &str| {
        assert_eq!(r.code, 2, "{what}: {}", r.stderr);
        assert!(!r.stderr.contains("panicked"), "{what}: {}", r.stderr);
        assert!(r.stdout.is_empty(), "{what}: {}", r.stdout);
    };
    let missing = run(Path::new("/nonexistent/iotests"), &scratch, &[]);
    assert_eq!(missing.stderr.lines().count(), 1, "{}", missing.stderr);
    assert!(
        missing.stderr.contains("does not exist"),
        "{}",
        missing.stderr
    );
    check(missing, "missing dir");
    check(
        run(&fixture("pass"), &scratch, &["no_such_test"]),
        "unknown test",
    );
    check(
        run(&fixture("pass"), &scratch, &["--no-such-option"]),
        "unknown option",
    );
    check(run(&fixture("pass"), &scratch, &["-j", "0"]), "zero jobs");

    let mut cmd = command(RUNNER);
    cmd.args(["--zio", "/nonexistent/zio", "--dir"])
        .arg(fixture("pass"))
        .arg("--scratch")
        .arg(&scratch);
    check(finish(cmd), "missing zio");
}

/// Whether `text` holds an ANSI colour escape.
fn has_colour(text: &str) -> bool {
    text.contains("\x1b[")
}

#[test]
fn color_always_colours_status_words() {
    let scratch = temp_dir("color-always");
    let r = run(&fixture("pass"), &scratch, &["--color", "always"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    let ok = r.stdout.lines().find(|l| l.starts_with("ok ")).unwrap();
    assert!(ok.contains("\x1b[32mpass\x1b[0m"), "{ok:?}");
    let skipped = r
        .stdout
        .lines()
        .find(|l| l.starts_with("skipped "))
        .unwrap();
    assert!(skipped.contains("\x1b[33mnot run\x1b[0m"), "{skipped:?}");
    // Colour does not move the columns: without the escapes the line is
    // what a plain run prints.
    let plain = ok.replace("\x1b[32m", "").replace("\x1b[0m", "");
    assert!(plain.starts_with("ok           pass   "), "{plain:?}");
    // NO_COLOR does not override an explicit --color always.
    let r = run_env(
        &fixture("mixed"),
        &scratch,
        &["--color", "always", "bad_exit"],
        &[("NO_COLOR", "1")],
    );
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains("\x1b[31mfail\x1b[0m"), "{}", r.stdout);
    // TAP is never coloured.
    let tap = run(&fixture("pass"), &scratch, &["--color", "always", "--tap"]);
    assert!(!has_colour(&tap.stdout), "{}", tap.stdout);
}

#[test]
fn color_never_no_color_and_pipes_are_plain() {
    let scratch = temp_dir("color-never");
    let dir = fixture("mixed");
    for (args, envs) in [
        (&["--color", "never"][..], &[][..]),
        (&["--color=auto"][..], &[("NO_COLOR", "1")][..]),
        // Auto into a pipe (as here, and in CI logs): no colour either.
        (&[][..], &[][..]),
    ] {
        let mut all = args.to_vec();
        all.extend(["bad_exit", "good"]);
        let r = run_env(&dir, &scratch, &all, envs);
        assert_eq!(r.code, 1, "{args:?} {envs:?}: {}", r.stdout);
        assert!(!has_colour(&r.stdout), "{args:?} {envs:?}: {}", r.stdout);
        assert_eq!(status_of(&r.stdout, "good"), "pass");
        assert_eq!(status_of(&r.stdout, "bad_exit"), "fail");
    }
    let bad = run(&dir, &scratch, &["--color", "sometimes"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
}

#[test]
fn second_run_shows_previous_times() {
    let scratch = temp_dir("previous-times");
    let dir = fixture("mixed");
    let first = run(&dir, &scratch, &["good", "bad_exit"]);
    assert_eq!(first.code, 1, "{}", first.stdout);
    for name in ["good", "bad_exit"] {
        assert_eq!(
            result_line(&first.stdout, name).was,
            None,
            "{}",
            first.stdout
        );
    }

    let second = run(&dir, &scratch, &["good", "bad_exit", "bad_output"]);
    assert_eq!(second.code, 1, "{}", second.stdout);
    let good1 = result_line(&first.stdout, "good");
    let good2 = result_line(&second.stdout, "good");
    assert_eq!(good2.status, "pass");
    assert_eq!(good2.was, Some(good1.secs), "{}", second.stdout);
    let bad_exit = result_line(&second.stdout, "bad_exit");
    assert_eq!(
        bad_exit.was,
        Some(result_line(&first.stdout, "bad_exit").secs)
    );
    // The reason still comes after the column.
    assert_eq!(bad_exit.reason, "exit status 3");
    // A test that never ran before has none, and its line stays aligned.
    let new = result_line(&second.stdout, "bad_output");
    assert_eq!((new.was, new.reason.as_str()), (None, "output mismatch"));
    let column = |name: &str| {
        let line = second.stdout.lines().find(|l| l.starts_with(name)).unwrap();
        line.find("exit status 3")
            .or_else(|| line.find("output mismatch"))
            .unwrap()
    };
    assert_eq!(
        column("bad_exit"),
        column("bad_output"),
        "{}",
        second.stdout
    );

    // The times live in the state file beside the --failed list.
    let state = fs::read_to_string(scratch.join(".last-failed")).unwrap();
    assert!(state.contains("good\tpass\t"), "{state}");
    assert!(state.contains("bad_exit\tfail\t"), "{state}");
    assert_eq!(
        listed(&dir, &scratch, &["--failed"]),
        "bad_exit\nbad_output\n"
    );
}
