//! `cargo test --test iotests`: every iotest in `iotests/` as one libtest
//! trial, run through the runner library against the freshly built zio.
//!
//! Tests in the `disabled` group are left out; `not run` tests become
//! ignored trials carrying their reason; a failure carries the diff.

#![deny(unsafe_code)]

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use libtest_mimic::{Arguments, Completion, Trial};
use zio_iotests::report::details;
use zio_iotests::vm::instances;
use zio_iotests::{Config, Selection, Status, discover, run_one, select};

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let trials = trials().unwrap_or_else(|e| {
        let msg = format!("{e:#}");
        vec![Trial::test("iotests-setup", move || Err(msg.into()))]
    });
    libtest_mimic::run(&args, trials).exit_code()
}

fn trials() -> anyhow::Result<Vec<Trial>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("iotests");
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join("zio-iotests");
    // One trial per test and kernel of its `# kernels:` line (NAME@6.12).
    let tests = instances(select(discover(&dir)?, &Selection::default())?, None, None);
    let mut cfg = Config::new(Path::new(env!("CARGO_BIN_EXE_zio")), &dir, &scratch)?;
    cfg.rerun_prefix = "./run-iotests.sh".to_string();
    let cfg = Arc::new(cfg);
    Ok(tests
        .into_iter()
        .map(|test| {
            let cfg = Arc::clone(&cfg);
            Trial::ignorable_test(test.name.clone(), move || {
                let verdict = run_one(&test, &cfg);
                match verdict.status {
                    Status::Pass => Ok(Completion::Completed),
                    Status::NotRun => Ok(Completion::ignored_with(verdict.reason)),
                    Status::Fail => {
                        let mut msg = verdict.reason.clone();
                        for line in details(&verdict) {
                            msg.push('\n');
                            msg.push_str(&line);
                        }
                        Err(msg.into())
                    }
                }
            })
        })
        .collect())
}
