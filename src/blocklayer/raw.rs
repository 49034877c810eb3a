//! `raw`: the passthrough format driver, optionally a window
//! (`offset=`, `size=`) onto its child. Offsets are translated; everything
//! else is forwarded.

use std::io;
use std::sync::Arc;

use super::open::open_child;
use super::{BlockDriver, NodeInfo, OpenFlags, OptionMap, Role, WriteFlags};

pub struct RawNode {
    child: Arc<dyn BlockDriver>,
    offset: u64,
    /// Fixed window size; `None` follows the child's length.
    size: Option<u64>,
}

/// `driver=raw[,offset=N][,size=N],file.*=...`.
pub fn open(opts: &mut OptionMap, flags: &OpenFlags) -> Result<Arc<dyn BlockDriver>, String> {
    let offset = opts.take_size("offset")?.unwrap_or(0);
    let size = opts.take_size("size")?;
    let child = open_child(opts, "file", flags)?;
    let child_len = child.length().map_err(|e| e.to_string())?;
    if let Some(size) = size {
        if size % 512 != 0 {
            return Err("Specified size is not multiple of 512".into());
        }
        if offset.checked_add(size).is_none_or(|end| end > child_len) {
            return Err(format!(
                "The sum of offset ({offset}) and size ({size}) has to be smaller or equal to the  actual size of the containing file ({child_len})"
            ));
        }
    } else if offset > child_len {
        return Err(format!(
            "Offset ({offset}) cannot be greater than size of the containing file ({child_len})"
        ));
    }
    Ok(Arc::new(RawNode {
        child,
        offset,
        size,
    }))
}

/// A plain raw node over `child` (what probing an image gives).
pub fn over(child: Arc<dyn BlockDriver>) -> Arc<dyn BlockDriver> {
    Arc::new(RawNode {
        child,
        offset: 0,
        size: None,
    })
}

impl BlockDriver for RawNode {
    fn driver_name(&self) -> &'static str {
        "raw"
    }

    fn role(&self) -> Role {
        Role::Format
    }

    fn child(&self) -> Option<&Arc<dyn BlockDriver>> {
        Some(&self.child)
    }

    fn length(&self) -> io::Result<u64> {
        match self.size {
            Some(s) => Ok(s),
            None => Ok(self.child.length()?.saturating_sub(self.offset)),
        }
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.child.read(self.offset + offset, buf)
    }

    fn write(&self, offset: u64, buf: &[u8], flags: WriteFlags) -> io::Result<()> {
        self.child.write(self.offset + offset, buf, flags)
    }

    fn write_zeroes(&self, offset: u64, len: u64, flags: WriteFlags) -> io::Result<()> {
        self.child.write_zeroes(self.offset + offset, len, flags)
    }

    fn discard(&self, offset: u64, len: u64) -> io::Result<()> {
        self.child.discard(self.offset + offset, len)
    }

    fn flush(&self) -> io::Result<()> {
        self.child.flush()
    }

    fn info(&self) -> NodeInfo {
        NodeInfo {
            format_names: vec!["raw".into()],
            ..NodeInfo::default()
        }
    }
}
