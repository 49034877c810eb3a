//! `zio check [--repair]` for `zoned` images (qemu-img check's role): the
//! header and every zone record are verified (checksums, conditions against
//! write pointers, open/active counts against the limits, the file's
//! length), each problem is reported on one line, and with `--repair` the
//! repairable ones are fixed and the image checked again.
//!
//! Repairs never make a zone claim more data than it could hold: an
//! unreadable record marks its zone full (its data stays readable; a reset
//! makes it usable again), a condition that contradicts its write pointer is
//! derived from the write pointer, zones over the open limit are closed,
//! zones over the active limit are finished, a lost cursor restarts at the
//! first sequential zone, and a truncated file is extended with write
//! pointers lowered to where its data ends. A damaged header is not
//! repairable.

use std::os::unix::fs::FileExt;

use super::file::FileNode;
use super::zone::{Zone, ZoneCond};
use super::zone_rules::{SavedZones, ZoneState};
use super::zoned::{HEADER_SIZE, Header, RECORD, decode_record, encode_record};
use super::{OpenFlags, strerror};

/// How a check ended, as its exit status says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// 0: nothing wrong.
    Clean,
    /// 1: problems that `--repair` fixes, or fixed.
    Repairable,
    /// 2: the image cannot be trusted or repaired.
    Corrupt,
}

impl Verdict {
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Clean => 0,
            Verdict::Repairable => 1,
            Verdict::Corrupt => 2,
        }
    }
}

/// One problem and, when repairable, the state that fixes it.
struct Problem {
    what: String,
    fix: String,
}

/// Checks (and with `repair`, repairs) the zoned image at `path`. Prints
/// its findings through `say`.
pub fn check(path: &str, repair: bool, say: &mut dyn FnMut(&str)) -> Verdict {
    let flags = OpenFlags {
        read_only: !repair,
        ..OpenFlags::default()
    };
    let node = match FileNode::open_path(path, &flags, "file", false) {
        Ok(n) => n,
        Err(e) => {
            say(&format!("zio: {e}"));
            return Verdict::Corrupt;
        }
    };
    let file = node.file();
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut hb = vec![0u8; HEADER_SIZE as usize];
    if len < HEADER_SIZE || file.read_exact_at(&mut hb, 0).is_err() {
        say(&format!(
            "ERROR header: the file is {len} bytes, shorter than a zoned image header"
        ));
        say("The image is corrupt: its header cannot be repaired.");
        return Verdict::Corrupt;
    }
    let (header, geo) = match Header::decode(&hb) {
        Ok(h) => h,
        Err(e) => {
            say(&format!("ERROR header: {e}"));
            say("The image is corrupt: its header cannot be repaired.");
            return Verdict::Corrupt;
        }
    };
    let nr = geo.nr_zones();
    let mut table = vec![0u8; (nr + 1) * RECORD as usize];
    if let Err(e) = file.read_exact_at(&mut table, header.table_offset) {
        say(&format!("ERROR zone table: {}", strerror(&e)));
        say("The image is corrupt: its zone table cannot be read.");
        return Verdict::Corrupt;
    }

    // Start from a fresh state for the geometry and lay the records over it.
    let fresh = ZoneState::new(geo);
    let zone = |i: usize| *fresh.zone(i);
    let rec = |i: usize| &table[i * RECORD as usize..(i + 1) * RECORD as usize];
    let mut problems: Vec<Problem> = Vec::new();
    let first_seq = geo.nr_conv();
    let cursor = match decode_record(0, rec(0)) {
        Some((c, _)) if (first_seq as u64..nr as u64).contains(&c) => c as usize,
        Some((c, _)) => {
            problems.push(Problem {
                what: format!("the implicit-close cursor {c} is not a sequential zone"),
                fix: format!("the cursor restarts at zone {first_seq}"),
            });
            first_seq
        }
        None => {
            problems.push(Problem {
                what: "the cursor record has a bad checksum".into(),
                fix: format!("the cursor restarts at zone {first_seq}"),
            });
            first_seq
        }
    };
    let data_end = len.saturating_sub(header.data_offset);
    let mut zones: Vec<(u64, ZoneCond)> = Vec::with_capacity(nr);
    for i in 0..nr {
        let z = zone(i);
        let fixed = |why: String, problems: &mut Vec<Problem>| {
            let (wp, cond) = derive(&z, z.start + z.cap);
            problems.push(Problem {
                what: format!("zone {i}: {why}"),
                fix: format!("zone {i} is marked full"),
            });
            (wp, cond)
        };
        let entry = match decode_record(i as u64 + 1, rec(i + 1)) {
            None => fixed("the record has a bad checksum".into(), &mut problems),
            Some((wp, c)) => match ZoneCond::from_u8(c) {
                None => fixed(format!("unknown condition {c}"), &mut problems),
                Some(cond) if z.fits(wp, cond) => (wp, cond),
                Some(cond) => {
                    let (nwp, ncond) = derive(&z, wp);
                    problems.push(Problem {
                        what: format!(
                            "zone {i}: condition {} does not fit write pointer {wp:#x}",
                            cond.as_u8()
                        ),
                        fix: format!("zone {i} gets condition {} at {nwp:#x}", ncond.as_u8()),
                    });
                    (nwp, ncond)
                }
            },
        };
        zones.push(entry);
    }

    // Data the file does not hold cannot be claimed.
    if len < header.file_len() {
        problems.push(Problem {
            what: format!(
                "the file is truncated: {len} bytes, the geometry needs {}",
                header.file_len()
            ),
            fix: "the file is extended".into(),
        });
        for (i, e) in zones.iter_mut().enumerate() {
            let z = zone(i);
            if e.1 != ZoneCond::NotWp
                && e.0 > data_end.max(z.start)
                && !matches!(e.1, ZoneCond::Offline | ZoneCond::ReadOnly)
            {
                let end = (data_end / 512 * 512).max(z.start);
                let (wp, cond) = derive(&z, end);
                problems.push(Problem {
                    what: format!(
                        "zone {i}: the write pointer {:#x} claims data past the end of the file",
                        e.0
                    ),
                    fix: format!("zone {i} gets condition {} at {wp:#x}", cond.as_u8()),
                });
                *e = (wp, cond);
            }
        }
    }

    // Resource counts against the limits.
    let (max_open, max_active) = (geo.max_open() as usize, geo.max_active() as usize);
    let open: Vec<usize> = (0..nr).filter(|&i| zones[i].1.is_open()).collect();
    if max_open != 0 && open.len() > max_open {
        for &i in &open[max_open..] {
            let z = zone(i);
            let cond = if zones[i].0 == z.start {
                ZoneCond::Empty
            } else {
                ZoneCond::Closed
            };
            problems.push(Problem {
                what: format!(
                    "zone {i}: {} zones are open, the limit is {max_open}",
                    open.len()
                ),
                fix: format!("zone {i} is closed"),
            });
            zones[i].1 = cond;
        }
    }
    let active: Vec<usize> = (0..nr).filter(|&i| zones[i].1.is_active()).collect();
    if max_active != 0 && active.len() > max_active {
        for &i in &active[max_active..] {
            let z = zone(i);
            problems.push(Problem {
                what: format!(
                    "zone {i}: {} zones are active, the limit is {max_active}",
                    active.len()
                ),
                fix: format!("zone {i} is finished"),
            });
            zones[i] = (z.start + z.len, ZoneCond::Full);
        }
    }

    if problems.is_empty() {
        say("No errors were found on the image.");
        return Verdict::Clean;
    }
    if !repair {
        for p in &problems {
            say(&format!("ERROR {} (repair: {})", p.what, p.fix));
        }
        say(&format!(
            "{} errors were found on the image; zio check --repair can repair them.",
            problems.len()
        ));
        return Verdict::Repairable;
    }
    for p in &problems {
        say(&format!("Repairing {}: {}", p.what, p.fix));
    }
    let saved = SavedZones { zones, cursor };
    if let Err(e) = ZoneState::from_saved(geo, &saved) {
        say(&format!(
            "ERROR the repaired table is still inconsistent: {e}"
        ));
        return Verdict::Corrupt;
    }
    let mut out = Vec::with_capacity(table.len());
    out.extend_from_slice(&encode_record(0, cursor as u64, 0));
    for (i, &(wp, cond)) in saved.zones.iter().enumerate() {
        out.extend_from_slice(&encode_record(i as u64 + 1, wp, cond.as_u8()));
    }
    let written = (if len < header.file_len() {
        file.set_len(header.file_len())
    } else {
        Ok(())
    })
    .and_then(|()| file.write_all_at(&out, header.table_offset))
    .and_then(|()| file.sync_all());
    if let Err(e) = written {
        say(&format!(
            "ERROR writing the repaired table: {}",
            strerror(&e)
        ));
        return Verdict::Corrupt;
    }
    say(&format!(
        "The following inconsistencies were found and repaired: {}",
        problems.len()
    ));
    Verdict::Repairable
}

/// The state a write pointer alone implies for a sequential zone (a
/// pointer outside the zone, or between capacity and length, makes it
/// full at its capacity).
fn derive(z: &Zone, wp: u64) -> (u64, ZoneCond) {
    let (s, cap_end, end) = (z.start, z.start + z.cap, z.start + z.len);
    if z.fits(end, ZoneCond::NotWp) {
        return (end, ZoneCond::NotWp);
    }
    match wp {
        w if w == s => (s, ZoneCond::Empty),
        w if w > s && w < cap_end => (w, ZoneCond::Closed),
        w if w == end => (end, ZoneCond::Full),
        _ => (cap_end, ZoneCond::Full),
    }
}
