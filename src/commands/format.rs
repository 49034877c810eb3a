//! Output helpers shared by the report-style commands (`zone_report -j/-t/
//! --blkzone`, `zone_summary`, `info -j`): names of zone conditions and
//! types, the JSON records (schema: docs/report-formats.md and
//! docs/zone-report.schema.json), util-linux `blkzone report` lines, and the
//! argument-count message of the dispatcher for commands that scan their
//! own flags.

use serde::Serialize;

use super::Console;
use zio_block::{Zone, ZoneCond, ZoneType};

/// Version of the JSON output schemas (zone report records, zone summary,
/// info). Bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// The dispatcher's message for a wrong operand count, for commands whose
/// table entry accepts any count so that they can take a flag first.
pub fn bad_count(con: &mut Console, word: &str, given: usize, expected: usize) {
    con.warn(&format!(
        "bad argument count {given} to {word}, expected {expected} arguments"
    ));
}

/// The condition's name in JSON and tables.
pub fn cond_name(c: ZoneCond) -> &'static str {
    match c {
        ZoneCond::NotWp => "not-write-pointer",
        ZoneCond::Empty => "empty",
        ZoneCond::ImplicitOpen => "implicit-open",
        ZoneCond::ExplicitOpen => "explicit-open",
        ZoneCond::Closed => "closed",
        ZoneCond::ReadOnly => "read-only",
        ZoneCond::Full => "full",
        ZoneCond::Offline => "offline",
    }
}

/// The type's name in JSON and tables.
pub fn type_name(t: ZoneType) -> &'static str {
    match t {
        ZoneType::Conventional => "conventional",
        ZoneType::SeqWriteRequired => "seq-write-required",
        ZoneType::SeqWritePreferred => "seq-write-preferred",
    }
}

/// Bytes below the write pointer of a sequential zone whose write pointer
/// is meaningful (not conventional, read-only or offline), at most its
/// capacity (a finished zone's write pointer is its end). `None` otherwise.
pub fn written(z: &Zone) -> Option<u64> {
    if z.ztype == ZoneType::Conventional
        || matches!(z.cond, ZoneCond::ReadOnly | ZoneCond::Offline)
        || z.wp < z.start
        || z.wp > z.start + z.len
    {
        return None;
    }
    Some((z.wp - z.start).min(z.cap))
}

/// One zone of `zone_report -j` (schema version [`SCHEMA_VERSION`]).
#[derive(Serialize)]
pub struct ZoneRecord {
    pub start: u64,
    pub start_sector: u64,
    pub len: u64,
    pub len_sectors: u64,
    pub capacity: u64,
    pub capacity_sectors: u64,
    pub wp: u64,
    pub wp_sectors: u64,
    #[serde(rename = "type")]
    pub ztype: u8,
    pub type_name: &'static str,
    pub cond: u8,
    pub cond_name: &'static str,
}

impl From<&Zone> for ZoneRecord {
    fn from(z: &Zone) -> Self {
        ZoneRecord {
            start: z.start,
            start_sector: z.start >> 9,
            len: z.len,
            len_sectors: z.len >> 9,
            capacity: z.cap,
            capacity_sectors: z.cap >> 9,
            wp: z.wp,
            wp_sectors: z.wp_sectors(),
            ztype: z.ztype.as_u8(),
            type_name: type_name(z.ztype),
            cond: z.cond.as_u8(),
            cond_name: cond_name(z.cond),
        }
    }
}

/// A value serialized on one line.
pub fn json_line<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// A value serialized over several indented lines.
pub fn json_pretty<T: Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// util-linux blkzone's abbreviation of a condition (`condition_str`).
fn blkzone_cond(cond: u8) -> &'static str {
    const NAMES: [&str; 16] = [
        "nw", "em", "oi", "oe", "cl", "x5", "x6", "x7", "x8", "x9", "xA", "xB", "xC", "ro", "fu",
        "of",
    ];
    NAMES[(cond & 0xf) as usize]
}

/// util-linux blkzone's name of a zone type (`type_text`).
fn blkzone_type(t: u8) -> &'static str {
    match t {
        1 => "CONVENTIONAL",
        2 => "SEQ_WRITE_REQUIRED",
        3 => "SEQ_WRITE_PREFERRED",
        _ => "RESERVED",
    }
}

/// One line of `blkzone report` (util-linux 2.38, with zone capacity), in
/// sectors; the write pointer relative to the zone start (0 for a
/// conventional zone). A read-only or offline zone's write pointer is
/// invalid: zio reports the zone end, null_blk all ones, which blkzone
/// prints as all ones minus the start; so does this. zio's devices never
/// set the reset or non-seq flags.
pub fn blkzone_line(z: &Zone) -> String {
    let start = z.start >> 9;
    let wp = if z.ztype == ZoneType::Conventional {
        0
    } else if matches!(z.cond, ZoneCond::ReadOnly | ZoneCond::Offline) {
        u64::MAX.wrapping_sub(start)
    } else {
        (z.wp >> 9).wrapping_sub(start)
    };
    let cond = z.cond.as_u8();
    let ty = z.ztype.as_u8();
    format!(
        "  start: 0x{start:09x}, len 0x{:06x}, cap 0x{:06x}, wptr 0x{wp:06x} reset:0 non-seq:0, zcond:{cond:2}({}) [type: {ty}({})]",
        z.len >> 9,
        z.cap >> 9,
        blkzone_cond(cond),
        blkzone_type(ty),
    )
}

/// A byte count exactly, in the largest binary unit that divides it
/// (`4 MiB`, `4100 KiB`, `512 B`, `0`), so table cells never round.
pub fn exact_size(b: u64) -> String {
    const UNITS: [(&str, u32); 4] = [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)];
    if b == 0 {
        return "0".into();
    }
    for (name, shift) in UNITS {
        if b.is_multiple_of(1 << shift) {
            return format!("{} {name}", b >> shift);
        }
    }
    format!("{b} B")
}

/// `part / whole` in percent, two decimals, 0 for an empty whole.
pub fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    (part as f64 * 10000.0 / whole as f64).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(start: u64, wp: u64, ztype: ZoneType, cond: ZoneCond) -> Zone {
        Zone {
            start,
            len: 4 << 20,
            cap: 3 << 20,
            wp,
            ztype,
            cond,
        }
    }

    #[test]
    fn blkzone_lines_match_util_linux() {
        let z = zone(
            4 << 20,
            (4 << 20) + 4096,
            ZoneType::SeqWriteRequired,
            ZoneCond::ImplicitOpen,
        );
        assert_eq!(
            blkzone_line(&z),
            "  start: 0x000002000, len 0x002000, cap 0x001800, wptr 0x000008 reset:0 non-seq:0, zcond: 2(oi) [type: 2(SEQ_WRITE_REQUIRED)]"
        );
        let c = zone(0, 4 << 20, ZoneType::Conventional, ZoneCond::NotWp);
        assert_eq!(
            blkzone_line(&c),
            "  start: 0x000000000, len 0x002000, cap 0x001800, wptr 0x000000 reset:0 non-seq:0, zcond: 0(nw) [type: 1(CONVENTIONAL)]"
        );
        let f = zone(
            8 << 20,
            12 << 20,
            ZoneType::SeqWriteRequired,
            ZoneCond::Full,
        );
        assert!(blkzone_line(&f).ends_with(
            "wptr 0x002000 reset:0 non-seq:0, zcond:14(fu) [type: 2(SEQ_WRITE_REQUIRED)]"
        ));
    }

    #[test]
    fn written_is_clamped_and_only_for_valid_pointers() {
        let f = zone(
            8 << 20,
            12 << 20,
            ZoneType::SeqWriteRequired,
            ZoneCond::Full,
        );
        assert_eq!(written(&f), Some(3 << 20));
        let o = zone(
            8 << 20,
            u64::MAX,
            ZoneType::SeqWriteRequired,
            ZoneCond::Offline,
        );
        assert_eq!(written(&o), None);
        assert_eq!(exact_size(4100 << 10), "4100 KiB");
        assert_eq!(exact_size(512), "512 B");
        assert_eq!(percent(1, 3), 33.33);
        assert_eq!(percent(1, 0), 0.0);
    }
}
