//! zio: a qemu-io-style shell for zoned block devices.
//!
//! `blocklayer` owns the node graph and drivers; `commands` owns the shell
//! commands, which see only the `BlockBackend` API; `runner` owns the
//! golden-output test runner behind `run-iotests.sh`.

pub mod blocklayer;
pub mod commands;
pub mod rng;
pub mod runner;
pub mod units;
