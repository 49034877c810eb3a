//! zio-block, the block layer: a `BlockBackend` over a graph of nodes.
//!
//! The public face is narrow: the [`BlockBackend`] (what commands use),
//! [`open_image`], [`create_image`] and [`check_image`] (which find drivers
//! through the one driver table, `drivers`), the zone value types and the
//! zone rules ([`zone_rules`]) that everyone asks instead of repeating them.
//! The drivers themselves are private.
//!
//! Every node is a driver with one role (protocol, format or filter)
//! behind the [`BlockDriver`] trait. Protocol drivers touch the OS or
//! memory, format drivers translate, filters forward with a policy. The backend checks every
//! request once (bounds, read-only) so drivers do not repeat it. Errors are
//! `std::io::Error` values that keep the errno, so the shell can print
//! `strerror` text as qemu-io does.

#![deny(unsafe_code)]

mod backend;
mod blkdebug;
mod breakpoints;
mod create;
mod driver;
mod drivers;
mod emulated;
mod file;
mod filter;
// The Linux zone ioctls: the only unsafe code in zio.
#[allow(unsafe_code)]
mod host_device;
mod nbd;
mod null;
mod null_co;
mod open;
mod options;
mod raw;
mod snapshot;
mod throttle;
mod zone;
mod zoned;
mod zoned_check;

pub mod aligned;
pub mod rng;
pub mod units;
pub mod zone_rules;

pub use aligned::AlignedBuf;
pub use backend::{BDRV_REQUEST_MAX_BYTES, BlockBackend, PATTERN_BUF};
pub use driver::{BlockDriver, NodeInfo, OnProgress, Prealloc, Role, WriteFlags};
pub use drivers::{Verdict, check_image, creatable_formats, create_image, driver_names};
pub use open::{OpenError, OpenFlags, OpenRequest, open_image};
pub(crate) use options::OptionMap;
pub use zone::{KernelSeries, Zone, ZoneCond, ZoneError, ZoneInfo, ZoneModel, ZoneOp, ZoneType};

/// Driver internals for the fuzzer (zio-fuzz), which feeds them bytes no
/// public path can: not part of the API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    pub use super::null::NullNode;
    pub use super::options::OptionMap;
    /// The zoned image format: its header, `create`, `open_over`.
    pub mod zoned {
        pub use crate::zoned::{Header, create, open_over};
    }
}

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
