//! The ublk target: each request of the kernel answered through the
//! [`BlockBackend`]. Reads, writes (FUA kept), flushes, discards, write
//! zeroes, the zone operations (open, close, finish, reset, reset-all),
//! zone append (its landing sector goes back with the completion) and zone
//! reports (Linux `struct blk_zone` records). A failed request completes
//! with the block layer's errno; the zone rules are the graph's.

use std::io;
use std::sync::Arc;

use libublk::io::UblkQueue;
use libublk::{BufDesc, UblkIORes, sys};
use zio_block::{BlockBackend, WriteFlags, Zone, ZoneCond, ZoneOp, ZoneType};

use crate::copy::{from_request, to_request};
use crate::params::{Geometry, IO_BUF_BYTES};

/// Bytes of one Linux `struct blk_zone`.
pub const BLK_ZONE_BYTES: usize = 64;

/// Answers the requests of one queue (one thread); its buffer holds one
/// request's data at a time.
pub struct Handler {
    blk: Arc<BlockBackend>,
    geo: Geometry,
    buf: Vec<u8>,
}

fn err(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

impl Handler {
    pub fn new(blk: Arc<BlockBackend>, geo: Geometry) -> Handler {
        Handler {
            blk,
            geo,
            buf: vec![0; IO_BUF_BYTES as usize],
        }
    }

    /// Serves request `tag` and completes it.
    pub fn handle(&mut self, q: &UblkQueue, tag: u16) {
        let iod = *q.get_iod(tag);
        let (res, lba) = match self.run(q, tag, &iod) {
            Ok(done) => done,
            Err(e) => (-e.raw_os_error().unwrap_or(libc::EIO), 0),
        };
        // With UBLK_F_ZONED the address of a completion is a zone append's
        // landing sector (0 for the rest); the data moved by user copy.
        let desc = if self.geo.zoned.is_some() {
            BufDesc::ZonedAppendLba(lba)
        } else {
            BufDesc::Slice(&[])
        };
        let _ = q.complete_io_cmd_unified(tag, desc, Ok(UblkIORes::Result(res)));
    }

    /// The request's result (bytes, or 0) and a zone append's sector.
    fn run(
        &mut self,
        q: &UblkQueue,
        tag: u16,
        iod: &sys::ublksrv_io_desc,
    ) -> io::Result<(i32, u64)> {
        let op = iod.op_flags & 0xff;
        let off = iod.start_sector << 9;
        let len = u64::from(iod.nr_sectors) << 9;
        let data_len = || -> io::Result<usize> {
            if len > IO_BUF_BYTES as u64 {
                Err(err(libc::EINVAL))
            } else {
                Ok(len as usize)
            }
        };
        let zone_size = self.geo.zoned.map(|z| z.zone_size);
        match op {
            sys::UBLK_IO_OP_READ => {
                let n = data_len()?;
                self.blk.read(off, &mut self.buf[..n])?;
                to_request(q, tag, &self.buf[..n])?;
                Ok((n as i32, 0))
            }
            sys::UBLK_IO_OP_WRITE => {
                let n = data_len()?;
                from_request(q, tag, &mut self.buf[..n])?;
                let flags = WriteFlags {
                    fua: iod.op_flags & sys::UBLK_IO_F_FUA != 0,
                    ..WriteFlags::default()
                };
                self.blk.write(off, &self.buf[..n], flags)?;
                Ok((n as i32, 0))
            }
            sys::UBLK_IO_OP_ZONE_APPEND => {
                let n = data_len()?;
                from_request(q, tag, &mut self.buf[..n])?;
                let at = self.blk.zone_append(off, &self.buf[..n])?;
                Ok((n as i32, at >> 9))
            }
            sys::UBLK_IO_OP_FLUSH => self.blk.flush().map(|()| (0, 0)),
            sys::UBLK_IO_OP_DISCARD => self.blk.discard(off, len).map(|()| (0, 0)),
            sys::UBLK_IO_OP_WRITE_ZEROES => {
                let flags = WriteFlags {
                    may_unmap: iod.op_flags & sys::UBLK_IO_F_NOUNMAP == 0,
                    ..WriteFlags::default()
                };
                self.blk.write_zeroes(off, len, flags).map(|()| (0, 0))
            }
            sys::UBLK_IO_OP_ZONE_OPEN
            | sys::UBLK_IO_OP_ZONE_CLOSE
            | sys::UBLK_IO_OP_ZONE_FINISH
            | sys::UBLK_IO_OP_ZONE_RESET => {
                let size = zone_size.ok_or_else(|| err(libc::EOPNOTSUPP))?;
                let zop = match op {
                    sys::UBLK_IO_OP_ZONE_OPEN => ZoneOp::Open,
                    sys::UBLK_IO_OP_ZONE_CLOSE => ZoneOp::Close,
                    sys::UBLK_IO_OP_ZONE_FINISH => ZoneOp::Finish,
                    _ => ZoneOp::Reset,
                };
                // The kernel sends one zone per request, with no length.
                self.blk
                    .zone_mgmt(zop, off, size)
                    .map(|()| (0, 0))
                    .map_err(|e| e.error)
            }
            sys::UBLK_IO_OP_ZONE_RESET_ALL => {
                zone_size.ok_or_else(|| err(libc::EOPNOTSUPP))?;
                self.reset_all().map(|()| (0, 0))
            }
            sys::UBLK_IO_OP_REPORT_ZONES => {
                zone_size.ok_or_else(|| err(libc::EOPNOTSUPP))?;
                // nr_sectors carries the number of zones asked for.
                let max = (iod.nr_sectors as usize).min(self.buf.len() / BLK_ZONE_BYTES);
                let zones = self.blk.zone_report(off, max)?;
                let n = encode_zones(&zones, &mut self.buf);
                to_request(q, tag, &self.buf[..n])?;
                Ok((n as i32, 0))
            }
            _ => Err(err(libc::EOPNOTSUPP)),
        }
    }

    /// Resets every sequential zone that is not empty.
    fn reset_all(&self) -> io::Result<()> {
        let length = self.blk.length()?;
        let mut at = 0;
        while at < length {
            let zones = self.blk.zone_report(at, 1024)?;
            let Some(last) = zones.last() else { break };
            at = last.start + last.len;
            for z in zones.iter().filter(|z| {
                z.ztype != ZoneType::Conventional
                    && !matches!(
                        z.cond,
                        ZoneCond::Empty | ZoneCond::ReadOnly | ZoneCond::Offline
                    )
            }) {
                self.blk
                    .zone_mgmt(ZoneOp::Reset, z.start, z.len)
                    .map_err(|e| e.error)?;
            }
        }
        Ok(())
    }
}

/// Writes `zones` into `out` as Linux `struct blk_zone` records (sectors,
/// native endianness, as the kernel reads them); returns the bytes used.
/// `out` must hold them all.
pub fn encode_zones(zones: &[Zone], out: &mut [u8]) -> usize {
    for (z, rec) in zones.iter().zip(out.chunks_exact_mut(BLK_ZONE_BYTES)) {
        rec.fill(0);
        rec[0..8].copy_from_slice(&(z.start >> 9).to_ne_bytes());
        rec[8..16].copy_from_slice(&(z.len >> 9).to_ne_bytes());
        rec[16..24].copy_from_slice(&z.wp_sectors().to_ne_bytes());
        rec[24] = z.ztype.as_u8();
        rec[25] = z.cond.as_u8();
        rec[32..40].copy_from_slice(&(z.cap >> 9).to_ne_bytes());
    }
    zones.len().min(out.len() / BLK_ZONE_BYTES) * BLK_ZONE_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_records_match_struct_blk_zone() {
        assert_eq!(std::mem::size_of::<sys::blk_zone>(), BLK_ZONE_BYTES);
        let z = Zone {
            start: 4 << 20,
            len: 4 << 20,
            cap: 3 << 20,
            wp: (4 << 20) + 4096,
            ztype: ZoneType::SeqWriteRequired,
            cond: ZoneCond::ImplicitOpen,
        };
        let mut out = vec![0xffu8; 2 * BLK_ZONE_BYTES];
        assert_eq!(encode_zones(&[z], &mut out), BLK_ZONE_BYTES);
        let word = |i: usize| u64::from_ne_bytes(out[i..i + 8].try_into().unwrap());
        assert_eq!(word(0), 8192);
        assert_eq!(word(8), 8192);
        assert_eq!(word(16), 8192 + 8);
        assert_eq!(out[24], 2);
        assert_eq!(out[25], 2);
        assert_eq!(word(32), 6144);
        assert!(out[26..32].iter().chain(&out[40..64]).all(|&b| b == 0));
        // The record after the last is untouched.
        assert_eq!(out[64], 0xff);
    }
}
