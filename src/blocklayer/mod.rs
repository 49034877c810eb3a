//! The block layer: a `BlockBackend` over a graph of nodes.
//!
//! Every node is a driver with one role (protocol, format or filter) behind the
//! [`BlockDriver`] trait. Protocol drivers touch the OS or memory, format
//! drivers translate, filters forward with a policy. The backend checks every
//! request once (bounds, read-only) so drivers do not repeat it. Errors are
//! `std::io::Error` values that keep the errno, so the shell can print
//! `strerror` text as qemu-io does.

mod backend;
mod driver;
mod open;
mod options;

pub mod aligned;
pub mod blkdebug;
pub mod create;
pub mod emulated;
pub mod file;
pub mod filter;
pub mod host_device;
pub mod null;
pub mod raw;
pub mod throttle;
pub mod zone;
pub mod zone_rules;
pub mod zoned;
pub mod zoned_check;

pub use backend::{BDRV_REQUEST_MAX_BYTES, BlockBackend, ZoneError};
pub use driver::{BlockDriver, NodeInfo, Role, WriteFlags};
pub use open::{OpenError, OpenFlags, OpenRequest, open_image};
pub use options::OptionMap;
pub use zone::{Zone, ZoneCond, ZoneInfo, ZoneModel, ZoneOp, ZoneType};

use std::io;

/// An `io::Error` carrying a raw errno, the way every driver reports failure.
pub fn errno(e: nix::errno::Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// The C library's text for an error (`strerror`, as qemu-io prints it),
/// without Rust's " (os error N)" suffix.
pub fn strerror(e: &io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(at) if e.raw_os_error().is_some() => text[..at].to_string(),
        _ => text,
    }
}
