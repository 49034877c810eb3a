//! qemu-io's `-s`/`--snapshot`: the image opened read-only under a
//! throwaway overlay, so writes land in the overlay and the image stays as
//! it was; the overlay goes with the process. QEMU puts a temporary qcow2
//! file there; zio keeps the overlay in memory, in the `null` driver's
//! chunks (64 KiB, copied up from the image on the first write to each),
//! at most its default memory limit (a quarter of RAM; past it a write
//! fails with ENOSPC and changes nothing). As over QEMU's qcow2 overlay,
//! the device has no zones.

use std::io;
use std::sync::Arc;

use super::null::{CHUNK, Chunks, default_mem_limit};
use super::{BlockDriver, NodeInfo, Role, WriteFlags};

pub struct Snapshot {
    child: Arc<dyn BlockDriver>,
    overlay: Chunks,
    size: u64,
}

impl Snapshot {
    pub fn over(child: Arc<dyn BlockDriver>) -> io::Result<Snapshot> {
        Snapshot::with_limit(child, default_mem_limit())
    }

    /// An overlay of at most `limit` bytes (whole chunks).
    fn with_limit(child: Arc<dyn BlockDriver>, limit: u64) -> io::Result<Snapshot> {
        let size = child.length()?;
        Ok(Snapshot {
            child,
            overlay: Chunks::new(limit),
            size,
        })
    }

    /// Calls `f(offset, len, in overlay)` for each run of `[offset, offset
    /// + len)` within one chunk.
    fn pieces(
        &self,
        offset: u64,
        len: u64,
        mut f: impl FnMut(u64, u64, bool) -> io::Result<()>,
    ) -> io::Result<()> {
        let end = offset + len;
        let mut pos = offset;
        while pos < end {
            let n = (CHUNK - pos % CHUNK).min(end - pos);
            f(pos, n, self.overlay.has_chunk(pos))?;
            pos += n;
        }
        Ok(())
    }
}

impl BlockDriver for Snapshot {
    fn driver_name(&self) -> &'static str {
        "snapshot"
    }

    fn role(&self) -> Role {
        Role::Filter
    }

    /// All allocated: the overlay's writes are data whatever the child says.
    fn allocation(&self, _offset: u64, len: u64) -> io::Result<(bool, u64)> {
        Ok((true, len))
    }

    fn child(&self) -> Option<&Arc<dyn BlockDriver>> {
        Some(&self.child)
    }

    fn length(&self) -> io::Result<u64> {
        Ok(self.size)
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.pieces(offset, buf.len() as u64, |at, n, copied| {
            let dst = &mut buf[(at - offset) as usize..(at - offset + n) as usize];
            if copied {
                self.overlay.read(at, dst);
                Ok(())
            } else {
                self.child.read(at, dst)
            }
        })
    }

    fn write(&self, offset: u64, buf: &[u8], _flags: WriteFlags) -> io::Result<()> {
        // Copy up every chunk the write touches first, so a failure (ENOSPC)
        // leaves what was readable as it was.
        self.pieces(offset, buf.len() as u64, |at, _, copied| {
            if copied {
                return Ok(());
            }
            let start = at / CHUNK * CHUNK;
            let n = CHUNK.min(self.size - start) as usize;
            let mut chunk = vec![0u8; n];
            self.child.read(start, &mut chunk)?;
            self.overlay.write(start, &chunk)
        })?;
        self.overlay.write(offset, buf)
    }

    fn discard(&self, _offset: u64, _len: u64) -> io::Result<()> {
        Ok(())
    }

    fn info(&self) -> NodeInfo {
        self.child.info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::null::NullNode;

    #[test]
    fn writes_stay_in_the_overlay_and_a_full_one_changes_nothing() {
        let base: Arc<dyn BlockDriver> = Arc::new(NullNode::with_limit(1 << 20, u64::MAX));
        base.write(0, &[0x11; 1 << 20], WriteFlags::default())
            .unwrap();
        let snap = Snapshot::with_limit(base.clone(), 2 * CHUNK).unwrap();
        // Over a chunk boundary: both chunks copied up, the rest kept.
        snap.write(CHUNK - 4, &[0x22; 8], WriteFlags::default())
            .unwrap();
        let mut buf = vec![0u8; 2 * CHUNK as usize];
        snap.read(0, &mut buf).unwrap();
        let at = (CHUNK - 4) as usize;
        assert!(buf[..at].iter().all(|&b| b == 0x11));
        assert!(buf[at..at + 8].iter().all(|&b| b == 0x22));
        assert!(buf[at + 8..].iter().all(|&b| b == 0x11));
        // A third chunk does not fit: ENOSPC, nothing readable changes.
        let e = snap
            .write(3 * CHUNK, &[0x33; 4], WriteFlags::default())
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC));
        let mut b = [0u8; 4];
        snap.read(3 * CHUNK, &mut b).unwrap();
        assert_eq!(b, [0x11; 4]);
        // The image never changed.
        base.read(CHUNK - 4, &mut b).unwrap();
        assert_eq!(b, [0x11; 4]);
    }
}
