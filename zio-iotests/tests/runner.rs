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
            .ends_with("Failures: bad_output\nFailed 1 of 1 iotest\n")
    );

    // The rerun hint is a working command that runs just this test.
    let rerun = r
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("  rerun: "))
        .expect("rerun line");
    assert!(rerun.ends_with(" bad_output"), "{rerun}");
    let again = run_printed(rerun, &temp_dir("mismatch-rerun"));
    assert_eq!(again.code, 1, "{}\n{}", again.stdout, again.stderr);
    assert!(
        again.stdout.ends_with("Failed 1 of 1 iotest\n"),
        "{}",
        again.stdout
    );
}

/// Runs a command line the runner printed (a rerun or bless hint) through
/// `sh`, with scratch root `scratch`.
fn run_printed(command_line: &str, scratch: &Path) -> Run {
    let mut cmd = command("sh");
    cmd.arg("-c")
        .arg(format!("{command_line} --scratch \"$1\""))
        .arg("sh")
        .arg(scratch);
    finish(cmd)
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
    // Named alone, it is not run, and that is no silent empty run.
    let r = run(&dir, &scratch, &["-n", "off"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(
        r.stderr.contains("run only with -g disabled"),
        "{}",
        r.stderr
    );
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

/// Asserts `r` is a usage error: exit 2, nothing on stdout, one line on
/// stderr that is `zio-iotests: ` and `message`.
fn assert_usage_error(r: &Run, message: &str) {
    assert_eq!(r.code, 2, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    assert_eq!(r.stdout, "");
    assert_eq!(r.stderr, format!("zio-iotests: {message}\n"));
}

#[test]
fn selecting_nothing_by_mistake_is_an_error() {
    let scratch = temp_dir("select-nothing");
    let dir = fixture("mixed");
    let groups = "(groups: auto, disabled, quick)";
    for args in [
        &["-g", "nosuchgroup"][..],
        &["-n", "-g", "quick,nosuchgroup"],
    ] {
        let r = run(&dir, &scratch, args);
        assert_usage_error(&r, &format!("no such group: nosuchgroup {groups}"));
    }
    let r = run(&dir, &scratch, &["-x", "quik"]);
    assert_usage_error(&r, &format!("no such group: quik {groups}"));
    let r = run(&dir, &scratch, &["nosuchtest"]);
    assert_usage_error(
        &r,
        "no such test: nosuchtest (a test needs both NAME and NAME.out)",
    );
    let r = run(&dir, &scratch, &["-x", "quick,auto"]);
    assert_usage_error(
        &r,
        "no tests selected: nothing matches -x quick,auto \
         (tests in group disabled run only with -g disabled)",
    );
    // --vm runs only realdev tests: none is selected here, and it says so
    // before any VM is involved.
    let r = run(&dir, &scratch, &["--vm", "-g", "quick"]);
    assert_usage_error(
        &r,
        "no tests selected: --vm runs only tests in group realdev, and none of the 2 tests selected is",
    );
    let empty = temp_dir("select-nothing-dir");
    let r = run(&empty, &scratch, &[]);
    assert_usage_error(
        &r,
        "no tests: a test is a script NAME with its expected output NAME.out",
    );
}

#[test]
fn failed_with_nothing_to_rerun_says_so_and_passes() {
    let scratch = temp_dir("failed-none");
    let dir = fixture("pass");
    // Never ran: nothing failed.
    let r = run(&dir, &scratch, &["--failed"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "Nothing to run: no selected test failed when it last ran\n"
    );
    assert_eq!(run(&dir, &scratch, &["ok"]).code, 0);
    let tap = run(&dir, &scratch, &["--failed", "--tap"]);
    assert_eq!(tap.code, 0, "{}", tap.stderr);
    assert_eq!(
        tap.stdout,
        "TAP version 13\n1..0 # SKIP nothing to run: no selected test failed when it last ran\n"
    );
}

/// A copy of suite `suite` plus a test `name` with script `body` (after
/// the shebang, group line and common.rc) and, if given, its `.out`.
fn suite_with(tmp: &Path, suite: &str, name: &str, body: &str, out: Option<&str>) -> PathBuf {
    let dir = copy_suite(suite, tmp);
    let script = format!("#!/usr/bin/env bash\n# group: quick\n. ./common.rc\n{body}");
    fs::write(dir.join(name), script).unwrap();
    if let Some(out) = out {
        fs::write(dir.join(format!("{name}.out")), out).unwrap();
    }
    dir
}

#[test]
fn bless_writes_the_out_of_a_new_test() {
    let tmp = temp_dir("bless-new");
    let scratch = tmp.join("scratch");
    let dir = suite_with(&tmp, "pass", "fresh", "echo hello\n_done\n", None);
    let out = dir.join("fresh.out");

    let r = run(&dir, &scratch, &["fresh"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(!out.exists());
    // The error says how to bless it, with a command that works.
    let hint = r
        .stderr
        .strip_prefix("zio-iotests: fresh has no fresh.out yet: `")
        .and_then(|rest| rest.strip_suffix("` writes it from a run\n"))
        .unwrap_or_else(|| panic!("{}", r.stderr));
    assert!(hint.ends_with(" --bless fresh"), "{hint}");
    let r = run_printed(hint, &scratch);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(result_line(&r.stdout, "fresh").reason, "blessed");
    assert_eq!(
        fs::read_to_string(&out).unwrap(),
        "QA output created by fresh\nhello\n*** done\n"
    );
    let r = run(&dir, &scratch, &["fresh"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert_eq!(status_of(&r.stdout, "fresh"), "pass");

    // A new test that fails is not blessed: still no .out.
    let dir = suite_with(&tmp.join("2"), "pass", "broken", "exit 3\n", None);
    let r = run(&dir, &scratch, &["--bless", "broken"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(!dir.join("broken.out").exists());
}

#[test]
fn new_writes_a_skeleton_that_runs_and_blesses() {
    let tmp = temp_dir("new");
    let scratch = tmp.join("scratch");
    let dir = copy_suite("pass", &tmp);
    let r = run(&dir, &scratch, &["--new", "my-test"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("wrote "), "{}", r.stdout);
    assert!(r.stdout.ends_with(" --bless my-test\n"), "{}", r.stdout);
    let script = dir.join("my-test");
    let text = fs::read_to_string(&script).unwrap();
    assert!(
        text.starts_with("#!/usr/bin/env bash\n# group: quick auto\n#\n"),
        "{text}"
    );
    assert!(text.contains("\n. ./common.rc\n") && text.ends_with("_done\n"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&script).unwrap().permissions().mode() & 0o777,
        0o755
    );

    let r = run(&dir, &scratch, &["--bless", "my-test"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let out = fs::read_to_string(dir.join("my-test.out")).unwrap();
    assert!(out.starts_with("QA output created by my-test\n"), "{out}");
    assert!(out.ends_with("*** done\n"), "{out}");
    assert_eq!(run(&dir, &scratch, &["my-test"]).code, 0);
    assert!(listed(&dir, &scratch, &["-g", "auto"]).contains("my-test\n"));

    // Groups from -g; realdev gets a device header.
    let r = run(
        &dir,
        &scratch,
        &["--new", "dev-test", "-g", "realdev,zoned"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let dev = fs::read_to_string(dir.join("dev-test")).unwrap();
    assert!(dev.contains("# group: realdev zoned\n# nullb: "), "{dev}");

    let r = run(&dir, &scratch, &["--new", "my-test"]);
    assert_eq!(r.code, 2);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(r.stderr.contains("exists already"), "{}", r.stderr);
    assert_eq!(fs::read_to_string(&script).unwrap(), text, "left alone");
    for bad in ["bad name", ".hidden", "x.out", "a/b", "t@6.12"] {
        let r = run(&dir, &scratch, &["--new", bad]);
        assert_eq!(r.code, 2, "{bad}");
        assert_eq!(r.stderr.lines().count(), 1, "{bad}: {}", r.stderr);
        assert!(r.stderr.contains("bad test name"), "{bad}: {}", r.stderr);
    }
    let r = run(&dir, &scratch, &["--new", "x", "-g", "a b"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("bad group name"), "{}", r.stderr);
    assert!(!dir.join("x").exists());
}

#[test]
fn junit_xml_is_well_formed_and_complete() {
    let tmp = temp_dir("junit");
    let scratch = tmp.join("scratch");
    // Output that XML must escape, and a control character it cannot hold.
    let dir = suite_with(
        &tmp,
        "mixed",
        "markup",
        "printf '<a href=\"x\">&amp; it'\\''s \\033[31mred\\n'\n_done\n",
        Some("QA output created by markup\nsomething else\n*** done\n"),
    );
    let file = tmp.join("report.xml");
    let r = run(&dir, &scratch, &["--junit", file.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let xml = fs::read_to_string(&file).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{e}:\n{xml}"));
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .unwrap();
    assert_eq!(suite.attribute("tests"), Some("4"), "{xml}");
    assert_eq!(suite.attribute("failures"), Some("3"), "{xml}");
    let cases: Vec<_> = suite
        .children()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    let names: Vec<&str> = cases.iter().map(|c| c.attribute("name").unwrap()).collect();
    assert_eq!(names, ["bad_exit", "bad_output", "good", "markup"]);
    for c in &cases {
        assert_eq!(c.attribute("classname"), Some("iotests"));
        let secs: f64 = c.attribute("time").unwrap().parse().unwrap();
        assert!(secs >= 0.0);
    }
    let failure = |i: usize| {
        cases[i]
            .children()
            .find(|n| n.has_tag_name("failure"))
            .unwrap_or_else(|| panic!("no failure in {}", names[i]))
    };
    assert_eq!(failure(0).attribute("message"), Some("exit status 3"));
    let diff = failure(1).text().unwrap();
    assert!(diff.contains("\n-expected line\n+actual line\n"), "{diff}");
    assert!(diff.contains("rerun: "), "{diff}");
    assert!(cases[2].first_element_child().is_none(), "a pass is empty");
    let markup = failure(3).text().unwrap();
    assert!(
        markup.contains("+<a href=\"x\">&amp; it's \\u{1b}[31mred\n"),
        "{markup}"
    );

    // Not run: skipped, with the reason.
    let r = run(
        &fixture("pass"),
        &scratch,
        &["--junit", file.to_str().unwrap()],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let xml = fs::read_to_string(&file).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let skipped = doc
        .descendants()
        .find(|n| n.has_tag_name("skipped"))
        .expect("a skipped element");
    assert_eq!(skipped.attribute("message"), Some("needs a zoned device"));
    assert_eq!(skipped.parent().unwrap().attribute("name"), Some("skipped"));

    // A file that cannot be written fails before anything runs.
    let r = run(
        &fixture("pass"),
        &scratch,
        &["--junit", "/nonexistent/dir/r.xml"],
    );
    assert_eq!(r.code, 2);
    assert_eq!(r.stdout, "");
    assert!(
        r.stderr.contains("cannot write /nonexistent/dir/r.xml"),
        "{}",
        r.stderr
    );
}

fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_string).collect()
}

#[test]
fn shards_split_the_selection() {
    let tmp = temp_dir("shard");
    let scratch = tmp.join("scratch");
    let dir = copy_suite("mixed", &tmp);
    for i in 0..12 {
        fs::write(dir.join(format!("t{i}")), "#!/bin/bash\n# group: quick\n").unwrap();
        fs::write(dir.join(format!("t{i}.out")), "").unwrap();
    }
    let all = lines(&listed(&dir, &scratch, &[]));
    let parts: Vec<Vec<String>> = (1..=3)
        .map(|k| lines(&listed(&dir, &scratch, &["--shard", &format!("{k}/3")])))
        .collect();
    let mut union: Vec<String> = parts.concat();
    union.sort();
    assert_eq!(union, all, "every test in exactly one part: {parts:?}");
    assert!(parts.iter().all(|p| !p.is_empty()), "{parts:?}");
    // Adding tests moves none of the others.
    fs::write(dir.join("z-new"), "#!/bin/bash\n# group: quick\n").unwrap();
    fs::write(dir.join("z-new.out"), "").unwrap();
    for (k, part) in parts.iter().enumerate() {
        let now = lines(&listed(
            &dir,
            &scratch,
            &["--shard", &format!("{}/3", k + 1)],
        ));
        let old: Vec<&String> = now.iter().filter(|n| *n != "z-new").collect();
        assert_eq!(old, part.iter().collect::<Vec<_>>());
    }
    // Selection first, then the split.
    let quick = lines(&listed(&dir, &scratch, &["-g", "quick", "--shard", "1/3"]));
    assert!(quick.iter().all(|n| parts[0].contains(n) || n == "z-new"));

    for bad in ["0/3", "4/3", "3", "a/b"] {
        let r = run(&dir, &scratch, &["--shard", bad]);
        assert_usage_error(
            &r,
            &format!("--shard {bad}: want K/N with 1 <= K <= N, e.g. 2/4"),
        );
    }
    // An empty part is a plain, passing run.
    let one = fixture("hang");
    let (empty, full) = if lines(&listed(&one, &scratch, &["--shard", "1/2"])).is_empty() {
        ("1/2", "2/2")
    } else {
        ("2/2", "1/2")
    };
    assert_eq!(listed(&one, &scratch, &["--shard", full]), "hang\n");
    let r = run(&one, &scratch, &["--shard", empty]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        format!("Nothing to run: shard {empty} holds none of the 1 test run selected\n")
    );
}

#[test]
fn help_names_the_launcher() {
    let mut cmd = command(RUNNER);
    cmd.arg("--help");
    let plain = finish(cmd);
    assert_eq!(plain.code, 0);
    assert!(
        plain.stdout.contains("Usage: zio-iotests [OPTIONS]"),
        "{}",
        plain.stdout
    );
    let mut cmd = command(RUNNER);
    cmd.env("ZIO_IOTESTS_LAUNCHER", "./run-iotests.sh")
        .arg("--help");
    let launched = finish(cmd);
    assert_eq!(launched.code, 0);
    assert!(
        launched
            .stdout
            .contains("Usage: ./run-iotests.sh [OPTIONS] [TEST]..."),
        "{}",
        launched.stdout
    );
    assert!(!launched.stdout.contains("Usage: zio-iotests"));
    // So do usage errors.
    let mut cmd = command(RUNNER);
    cmd.env("ZIO_IOTESTS_LAUNCHER", "./run-iotests.sh")
        .arg("--bogus");
    let bad = finish(cmd);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("Usage: ./run-iotests.sh"),
        "{}",
        bad.stderr
    );
}

/// `run-iotests.sh` with a stub `cargo` (it records its arguments) and a
/// stub runner in a fake target dir, its stderr a pipe as in CI.
#[test]
fn launcher_says_it_builds_in_a_log() {
    let tmp = temp_dir("launcher");
    let bin = tmp.join("bin");
    let target = tmp.join("target");
    fs::create_dir_all(&bin).unwrap();
    fs::create_dir_all(target.join("release")).unwrap();
    let stub = |path: &Path, body: &str| {
        use std::os::unix::fs::PermissionsExt;
        fs::write(path, format!("#!/bin/sh\n{body}")).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
    };
    let args_file = tmp.join("cargo-args");
    stub(
        &bin.join("cargo"),
        &format!("echo \"$@\" > '{}'\n", args_file.display()),
    );
    stub(
        &target.join("release/zio-iotests"),
        "echo \"runner $ZIO_IOTESTS_LAUNCHER $*\"\n",
    );
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let mut cmd = command("bash");
    cmd.arg(workspace_dir().join("run-iotests.sh"))
        .arg("-g")
        .arg("quick")
        .env("PATH", path)
        .env("CARGO_TARGET_DIR", &target);
    let r = finish(cmd);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // stderr is a pipe here, as in CI: one line says what takes the time.
    assert_eq!(
        r.stderr,
        "run-iotests.sh: building zio and zio-iotests (cargo build --release)...\n"
    );
    let cargo_args = fs::read_to_string(&args_file).unwrap();
    assert!(
        cargo_args.starts_with("build --release -q "),
        "{cargo_args}"
    );
    assert!(r.stdout.starts_with("runner "), "{}", r.stdout);
    assert!(r.stdout.ends_with(" -g quick\n"), "{}", r.stdout);
}
