//! The device the kernel is asked for: the graph's geometry and limits,
//! checked against what ublk_drv and the block layer accept (each refusal
//! names its limit), and turned into ublk's parameters.

use libublk::sys;
use zio_block::BlockBackend;

/// Bytes of one request's data buffer (libublk's default, 512 KiB): the
/// device's largest request.
pub const IO_BUF_BYTES: u32 = 512 << 10;

/// What the device looks like, in bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub length: u64,
    /// The logical block size (the zoned graph's write granularity, else 512).
    pub block: u64,
    pub read_only: bool,
    pub zoned: Option<Zoned>,
}

/// A zoned graph's geometry and limits (0: no limit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Zoned {
    pub zone_size: u64,
    pub nr_zones: u64,
    pub max_open: u64,
    pub max_active: u64,
    /// Largest zone append in bytes; 0: the zone size.
    pub max_append: u64,
}

impl Geometry {
    /// The geometry of the graph behind `blk`.
    pub fn of(blk: &BlockBackend) -> Result<Geometry, String> {
        let length = blk
            .length()
            .map_err(|e| format!("cannot get the image length: {}", zio_block::strerror(&e)))?;
        let info = blk.zone_info();
        Ok(Geometry {
            length,
            block: info.map_or(512, |i| i.write_granularity.max(512)),
            read_only: blk.is_read_only(),
            zoned: info.map(|i| Zoned {
                zone_size: i.zone_size,
                nr_zones: i.nr_zones,
                max_open: i.max_open,
                max_active: i.max_active,
                max_append: i.max_append,
            }),
        })
    }

    /// Refuses what the kernel would refuse, naming the limit: the block
    /// size, the length, and for a zoned device the zone size (a power of
    /// two number of sectors dividing the length, at most one request
    /// below 2^32 sectors) and the open/active limits (at most the number
    /// of zones).
    pub fn check_limits(&self) -> Result<(), String> {
        if !self.block.is_power_of_two() || self.block > 4096 {
            return Err(format!(
                "block size {} refused: ublk takes a power of two from 512 to 4096 bytes",
                self.block
            ));
        }
        if self.length == 0 || !self.length.is_multiple_of(self.block) {
            return Err(format!(
                "length {} refused: ublk needs a non-zero multiple of the {}-byte block",
                self.length, self.block
            ));
        }
        let Some(z) = &self.zoned else {
            return Ok(());
        };
        let sectors = z.zone_size >> 9;
        if !z.zone_size.is_multiple_of(512)
            || !sectors.is_power_of_two()
            || sectors > u64::from(u32::MAX)
        {
            return Err(format!(
                "zone size {} refused: the kernel needs a power of two number of 512-byte sectors (below 2 TiB)",
                z.zone_size
            ));
        }
        if z.zone_size < self.block {
            return Err(format!(
                "zone size {} refused: too small for the {}-byte block",
                z.zone_size, self.block
            ));
        }
        if !self.length.is_multiple_of(z.zone_size) {
            return Err(format!(
                "length {} refused: ublk needs a whole number of {}-byte zones (no smaller last zone)",
                self.length, z.zone_size
            ));
        }
        for (name, v) in [
            ("zone_max_open", z.max_open),
            ("zone_max_active", z.max_active),
        ] {
            if v > z.nr_zones {
                return Err(format!(
                    "{name} {v} refused: ublk takes at most the number of zones ({})",
                    z.nr_zones
                ));
            }
        }
        if z.max_append != 0 && z.max_append < self.block {
            return Err(format!(
                "zone_append_max {} refused: ublk needs at least one {}-byte block",
                z.max_append, self.block
            ));
        }
        Ok(())
    }

    /// ublk's parameters for this device, requests up to `io_buf_bytes`.
    pub fn ublk_params(&self, io_buf_bytes: u32) -> sys::ublk_params {
        let shift = self.block.trailing_zeros() as u8;
        let max_sectors = io_buf_bytes >> 9;
        let mut attrs = sys::UBLK_ATTR_VOLATILE_CACHE;
        if self.read_only {
            attrs |= sys::UBLK_ATTR_READ_ONLY;
        }
        let mut p = sys::ublk_params {
            types: sys::UBLK_PARAM_TYPE_BASIC | sys::UBLK_PARAM_TYPE_DISCARD,
            basic: sys::ublk_param_basic {
                attrs,
                logical_bs_shift: shift,
                physical_bs_shift: shift.max(12),
                io_opt_shift: shift.max(12),
                io_min_shift: shift,
                max_sectors,
                dev_sectors: self.length >> 9,
                ..Default::default()
            },
            discard: sys::ublk_param_discard {
                discard_granularity: self.block as u32,
                max_discard_sectors: u32::MAX >> 9,
                max_write_zeroes_sectors: u32::MAX >> 9,
                max_discard_segments: 1,
                ..Default::default()
            },
            ..Default::default()
        };
        if let Some(z) = &self.zoned {
            let zone_sectors = (z.zone_size >> 9) as u32;
            let append = match z.max_append {
                0 => zone_sectors,
                n => (n >> 9).min(u64::from(zone_sectors)) as u32,
            };
            p.types |= sys::UBLK_PARAM_TYPE_ZONED;
            p.basic.chunk_sectors = zone_sectors;
            p.zoned = sys::ublk_param_zoned {
                max_open_zones: z.max_open as u32,
                max_active_zones: z.max_active as u32,
                max_zone_append_sectors: append.min(max_sectors),
                ..Default::default()
            };
        }
        p
    }
}

/// The first difference between the parameters a device has (`have`) and
/// those an image would give it (`want`), in words; `None` if the image
/// can serve the device.
pub fn mismatch(have: &sys::ublk_params, want: &sys::ublk_params) -> Option<String> {
    let zoned = |p: &sys::ublk_params| p.types & sys::UBLK_PARAM_TYPE_ZONED != 0;
    let read_only = |p: &sys::ublk_params| p.basic.attrs & sys::UBLK_ATTR_READ_ONLY != 0;
    let fields: [(&str, u64, u64); 8] = [
        ("zoned", zoned(have).into(), zoned(want).into()),
        ("read-only", read_only(have).into(), read_only(want).into()),
        ("sectors", have.basic.dev_sectors, want.basic.dev_sectors),
        (
            "logical block size",
            1 << have.basic.logical_bs_shift,
            1 << want.basic.logical_bs_shift,
        ),
        (
            "zone sectors",
            have.basic.chunk_sectors.into(),
            want.basic.chunk_sectors.into(),
        ),
        (
            "max open zones",
            have.zoned.max_open_zones.into(),
            want.zoned.max_open_zones.into(),
        ),
        (
            "max active zones",
            have.zoned.max_active_zones.into(),
            want.zoned.max_active_zones.into(),
        ),
        (
            "max zone append sectors",
            have.zoned.max_zone_append_sectors.into(),
            want.zoned.max_zone_append_sectors.into(),
        ),
    ];
    fields
        .iter()
        .find(|(_, h, w)| h != w)
        .map(|(name, h, w)| format!("{name} {h} on the device, {w} in the image"))
}

/// The device asked for, in one phrase (for the kernel's refusal): "64 MiB
/// of 512-byte blocks, 16 zones of 4 MiB, open 3, active no limit".
impl std::fmt::Display for Geometry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let size = |b: u64| match b {
            b if b >= 1 << 20 && b.is_multiple_of(1 << 20) => format!("{} MiB", b >> 20),
            b if b >= 1 << 10 && b.is_multiple_of(1 << 10) => format!("{} KiB", b >> 10),
            b => format!("{b} bytes"),
        };
        write!(f, "{} of {}-byte blocks", size(self.length), self.block)?;
        if let Some(z) = &self.zoned {
            write!(f, ", {} zones of {}", z.nr_zones, size(z.zone_size))?;
            let limit = |n: u64| {
                if n == 0 {
                    "no limit".to_string()
                } else {
                    n.to_string()
                }
            };
            write!(
                f,
                ", open {}, active {}",
                limit(z.max_open),
                limit(z.max_active)
            )?;
        }
        if self.read_only {
            write!(f, ", read-only")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zoned(length: u64, zone_size: u64) -> Geometry {
        Geometry {
            length,
            block: 512,
            read_only: false,
            zoned: Some(Zoned {
                zone_size,
                nr_zones: length / zone_size,
                max_open: 0,
                max_active: 0,
                max_append: 0,
            }),
        }
    }

    #[test]
    fn zoned_params_carry_the_geometry() {
        let mut g = zoned(64 << 20, 4 << 20);
        if let Some(z) = &mut g.zoned {
            z.max_open = 3;
            z.max_active = 5;
            z.max_append = 64 << 10;
        }
        g.check_limits().unwrap();
        let p = g.ublk_params(IO_BUF_BYTES);
        assert_eq!(p.basic.chunk_sectors, 8192);
        assert_eq!(p.basic.dev_sectors, 131072);
        assert_eq!(p.zoned.max_open_zones, 3);
        assert_eq!(p.zoned.max_active_zones, 5);
        assert_eq!(p.zoned.max_zone_append_sectors, 128);
        assert_ne!(p.types & sys::UBLK_PARAM_TYPE_ZONED, 0);
    }

    #[test]
    fn append_without_limit_is_capped_by_the_request_size() {
        let p = zoned(64 << 20, 4 << 20).ublk_params(IO_BUF_BYTES);
        assert_eq!(p.zoned.max_zone_append_sectors, IO_BUF_BYTES >> 9);
    }

    #[test]
    fn plain_disk_has_no_zone_parameters() {
        let g = Geometry {
            length: 1 << 20,
            block: 512,
            read_only: true,
            zoned: None,
        };
        g.check_limits().unwrap();
        let p = g.ublk_params(IO_BUF_BYTES);
        assert_eq!(p.types & sys::UBLK_PARAM_TYPE_ZONED, 0);
        assert_eq!(p.basic.chunk_sectors, 0);
        assert_ne!(p.basic.attrs & sys::UBLK_ATTR_READ_ONLY, 0);
    }

    #[test]
    fn refusals_name_the_limit() {
        let e = zoned(60 << 20, 3 << 20).check_limits().unwrap_err();
        assert!(e.starts_with("zone size 3145728 refused"), "{e}");
        let e = zoned(66 << 20, 4 << 20).check_limits().unwrap_err();
        assert!(e.contains("whole number of 4194304-byte zones"), "{e}");
        let mut g = zoned(64 << 20, 4 << 20);
        if let Some(z) = &mut g.zoned {
            z.max_active = 17;
        }
        let e = g.check_limits().unwrap_err();
        assert!(e.starts_with("zone_max_active 17 refused"), "{e}");
    }

    #[test]
    fn the_refused_device_reads_as_one_phrase() {
        let mut g = zoned(64 << 20, 4 << 20);
        if let Some(z) = &mut g.zoned {
            z.max_open = 3;
        }
        assert_eq!(
            g.to_string(),
            "64 MiB of 512-byte blocks, 16 zones of 4 MiB, open 3, active no limit"
        );
        let plain = Geometry {
            length: 1536,
            block: 512,
            read_only: true,
            zoned: None,
        };
        assert_eq!(
            plain.to_string(),
            "1536 bytes of 512-byte blocks, read-only"
        );
    }

    #[test]
    fn a_recovered_device_must_match_the_image() {
        let g = zoned(64 << 20, 4 << 20);
        let p = g.ublk_params(IO_BUF_BYTES);
        assert_eq!(mismatch(&p, &p), None);
        let other = zoned(128 << 20, 4 << 20).ublk_params(IO_BUF_BYTES);
        assert_eq!(
            mismatch(&p, &other).as_deref(),
            Some("sectors 131072 on the device, 262144 in the image")
        );
        let mut ro = g.clone();
        ro.read_only = true;
        let ro = ro.ublk_params(IO_BUF_BYTES);
        assert_eq!(
            mismatch(&p, &ro).as_deref(),
            Some("read-only 0 on the device, 1 in the image")
        );
    }
}
