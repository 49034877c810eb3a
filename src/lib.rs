//! zio: a qemu-io-style shell for zoned block devices.
//!
//! This crate owns the shell's commands (`commands`), which see only the
//! `BlockBackend` API of the block layer (the `zio-block` crate); the
//! binary (`src/bin/zio.rs`) adds the command line, `create`, `check` and
//! the interactive shell. The golden-output runner is the `zio-iotests`
//! crate, the fuzzer the `zio-fuzz` crate in `fuzz/`.

#![deny(unsafe_code)]

pub mod commands;
