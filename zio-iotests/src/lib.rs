//! The golden-output test runner behind `run-iotests.sh` and
//! `cargo test --test iotests`, modelled on qemu-iotests' `check`.
//!
//! A test is a bash script `iotests/NAME` with its expected output in
//! `iotests/NAME.out`. The pieces, one per module:
//! [`discover`] finds tests, [`select`] filters and shards them, [`exec`] runs one
//! script, [`compare`] diffs outputs, [`outcome`] turns a run into a
//! verdict, [`schedule`] runs many in parallel, [`report`] formats results
//! (and [`junit`] as JUnit XML),
//! [`state`] remembers failures for `--failed`, [`vm`] runs the `realdev`
//! tests inside a Linux VM against real zoned devices (`--vm`), and [`cli`]
//! ties it together for the `zio-iotests` binary ([`skeleton`] writes a new
//! test for `--new`).

#![deny(unsafe_code)]

pub mod cli;
pub mod compare;
pub mod config;
pub mod discover;
pub mod exec;
pub mod junit;
pub mod outcome;
pub mod report;
pub mod schedule;
pub mod scratch;
pub mod select;
pub mod skeleton;
pub mod state;
pub mod vm;

pub use config::Config;
pub use discover::{TestCase, discover};
pub use outcome::{Status, Verdict, run_one};
pub use select::{DISABLED_GROUP, Selection, select};
