//! `zio serve`'s command line: its arguments (a clap `Args` the zio binary
//! mounts as a subcommand), opening the image the way the shell does, and
//! the exit status.

use std::process::ExitCode;

use clap::Args;
use zio_block::{OpenRequest, open_image};

use crate::{ServeOptions, print_path, serve};

/// `zio serve [-f FMT | --image-opts] [-r] [--queues N] [--depth D]
/// [--recoverable | --recover N] IMAGE`.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Image format (probed when left out)
    #[arg(
        short = 'f',
        long = "format",
        value_name = "FMT",
        conflicts_with = "image_opts"
    )]
    pub format: Option<String>,
    /// IMAGE is an option string (driver=...,...)
    #[arg(long = "image-opts")]
    pub image_opts: bool,
    /// Serve the image read-only
    #[arg(short = 'r', long = "read-only")]
    pub read_only: bool,
    /// Hardware queues of the device, one thread each
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub queues: u16,
    /// Requests in flight per queue
    #[arg(long, value_name = "D", default_value_t = 64)]
    pub depth: u16,
    /// Add the device with user recovery: if zio serve dies, the device
    /// stays, its new I/O waits for `zio serve --recover N`
    #[arg(long)]
    pub recoverable: bool,
    /// Serve device N (/dev/ublkbN) again, whose --recoverable zio serve
    /// died; IMAGE must be the image it served
    #[arg(long, value_name = "N", conflicts_with_all = ["recoverable", "queues", "depth"])]
    pub recover: Option<u32>,
    /// Image file, block device, or (with --image-opts) an option string
    pub image: String,
}

/// Runs `zio serve`: 0 once the device was served and removed, 1 with one
/// error line (prefixed `prog: `) when it could not be.
pub fn main(args: &ServeArgs, prog: &str) -> ExitCode {
    let req = OpenRequest {
        target: Some(args.image.clone()),
        format: args.format.clone(),
        image_opts: args.image_opts,
        read_only: args.read_only,
        ..OpenRequest::default()
    };
    let opts = ServeOptions {
        queues: args.queues,
        depth: args.depth,
        recoverable: args.recoverable,
        recover: args.recover,
    };
    // One line: the lock refusal's second line (qemu's wording) joins it.
    let served = open_image(&req)
        .map_err(|e| e.to_string().trim_end().replace('\n', ". "))
        .and_then(|blk| {
            serve(blk, opts, print_path, |line| {
                eprintln!("{prog}: serve: {line}")
            })
        });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{prog}: serve: {e}");
            ExitCode::FAILURE
        }
    }
}
