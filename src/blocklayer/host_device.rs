//! `host_device`: the protocol driver for block devices (/dev/nullb0, ...).
//!
//! Reads and writes go through the same I/O core as `file`; this module owns
//! what is particular to devices. Zone management through the Linux zone
//! ioctls arrives with the zoned block layer.

use std::os::unix::fs::FileTypeExt;
use std::sync::Arc;

use super::file::FileNode;
use super::{BlockDriver, OpenFlags, OptionMap};

/// `driver=host_device,filename=/dev/...`.
pub fn open(opts: &mut OptionMap, flags: &OpenFlags) -> Result<Arc<dyn BlockDriver>, String> {
    let path = opts
        .take("filename")
        .ok_or_else(|| "The 'host_device' driver needs the option 'filename'".to_string())?;
    let node = FileNode::open_path(&path, flags, "host_device")?;
    let is_block = std::fs::metadata(&path)
        .map(|m| m.file_type().is_block_device())
        .unwrap_or(false);
    if !is_block {
        return Err(format!(
            "'{path}' is not a block device (use driver=file for regular files)"
        ));
    }
    Ok(Arc::new(node))
}
