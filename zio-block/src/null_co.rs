//! `null-co` and `null-aio`: QEMU's null protocol drivers, for callers that
//! name them (qemu-iotests do): a device of `size` bytes (1 GiB by default,
//! as QEMU's) that stores nothing. Writes, write-zeroes and discards
//! succeed and are dropped; reads return zeros (QEMU leaves the caller's
//! buffer as it was unless `read-zeroes=on`; zio always fills it, so a read
//! never shows stale memory). `latency-ns` and `read-zeroes` are accepted
//! and change nothing. For a device that keeps what is written, zio's own
//! `null` driver.

use std::io;
use std::sync::Arc;

use super::{BlockDriver, NodeInfo, OpenFlags, OptionMap, Role, WriteFlags};

/// QEMU's default size of a null device.
pub const DEFAULT_SIZE: u64 = 1 << 30;

pub struct NullCo {
    name: &'static str,
    size: u64,
}

fn open_named(opts: &mut OptionMap, name: &'static str) -> Result<Arc<dyn BlockDriver>, String> {
    let size = opts.take_size("size")?.unwrap_or(DEFAULT_SIZE);
    opts.take_size("latency-ns")?;
    opts.take_bool("read-zeroes")?;
    Ok(Arc::new(NullCo { name, size }))
}

/// `driver=null-co[,size=N]`.
pub fn open_co(opts: &mut OptionMap, _flags: &OpenFlags) -> Result<Arc<dyn BlockDriver>, String> {
    open_named(opts, "null-co")
}

/// `driver=null-aio[,size=N]`.
pub fn open_aio(opts: &mut OptionMap, _flags: &OpenFlags) -> Result<Arc<dyn BlockDriver>, String> {
    open_named(opts, "null-aio")
}

impl BlockDriver for NullCo {
    fn driver_name(&self) -> &'static str {
        self.name
    }

    fn role(&self) -> Role {
        Role::Protocol
    }

    fn length(&self) -> io::Result<u64> {
        Ok(self.size)
    }

    fn read(&self, _offset: u64, buf: &mut [u8]) -> io::Result<()> {
        buf.fill(0);
        Ok(())
    }

    fn write(&self, _offset: u64, _buf: &[u8], _flags: WriteFlags) -> io::Result<()> {
        Ok(())
    }

    fn writev(
        &self,
        _offset: u64,
        bufs: &[&[u8]],
        _flags: WriteFlags,
        progress: super::OnProgress<'_>,
    ) -> io::Result<()> {
        progress(bufs.iter().map(|b| b.len() as u64).sum());
        Ok(())
    }

    fn write_zeroes(&self, _offset: u64, _len: u64, _flags: WriteFlags) -> io::Result<()> {
        Ok(())
    }

    fn discard(&self, _offset: u64, _len: u64) -> io::Result<()> {
        Ok(())
    }

    fn info(&self) -> NodeInfo {
        NodeInfo {
            format_names: vec![self.name.into(), self.name.into()],
            no_block_info: true,
            ..NodeInfo::default()
        }
    }
}
