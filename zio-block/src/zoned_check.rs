//! `zio check [--repair]` for `zoned` images (qemu-img check's role): the
//! header, both log superblocks, every table record (checksum, reserved
//! bytes, condition, alignment), every log entry that counts, and the
//! replayed state (conditions against write pointers, open/active counts
//! against the limits, the file's length) are verified; each problem is
//! reported on one line, and with `--repair` the repairable ones are fixed
//! and the image checked again.
//!
//! Exit status as qemu-img check's: 0 clean (or everything repaired), 2
//! errors found (or corrupt beyond repair), 1 the check could not be done
//! (no such file, the image in use, not a zoned image). Leaked space (3)
//! does not apply: bytes stored beyond a write pointer are never readable.
//!
//! Repairs never make a zone claim more data than it could hold: an
//! unreadable record marks its zone full (its data stays readable; a reset
//! makes it usable again), a condition that contradicts its write pointer is
//! derived from the write pointer, zones over the open limit are closed,
//! zones over the active limit are finished, a lost cursor restarts at the
//! first sequential zone, a log entry that does not fit is dropped with the
//! ones after it, and a truncated file gets its write pointers lowered to
//! where its data ends. The repaired table is written and synced, then a
//! new log epoch, and only then is a truncated file extended, so a repair
//! cut short is found again by the next check. A damaged header is not
//! repairable.

use std::io;
use std::sync::Arc;

use super::drivers::{Probed, Verdict};
use super::zone::{Zone, ZoneCond};
use super::zone_rules::{SavedZones, ZoneState};
use super::zoned::{
    HEADER_SIZE, Header, RECORD, check_record, decode_record, encode_record, replay, scan_log,
};
use super::{BlockDriver, WriteFlags, strerror};

/// One problem and the repair that fixes it.
struct Problem {
    what: String,
    fix: String,
}

/// Checks (and with `repair`, repairs) the zoned image `img` (opened
/// writable for a repair). Prints its findings through `say`.
pub(crate) fn check(img: Probed<'_>, repair: bool, say: &mut dyn FnMut(&str)) -> Verdict {
    let Probed {
        node,
        path,
        len,
        first,
    } = img;
    let mut hb = vec![0u8; HEADER_SIZE as usize];
    let got = first.len().min(hb.len());
    hb[..got].copy_from_slice(&first[..got]);
    if len < HEADER_SIZE {
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
    if let Err(e) = node.read(header.table_offset, &mut table) {
        say(&format!("ERROR zone table: {}", strerror(&e)));
        say("The image is corrupt: its zone table cannot be read.");
        return Verdict::Corrupt;
    }

    // The table's records, each checked on its own.
    let fresh = ZoneState::new(geo);
    let zone = |i: usize| fresh.zone(i);
    let rec = |i: usize| &table[i * RECORD as usize..(i + 1) * RECORD as usize];
    let mut problems: Vec<Problem> = Vec::new();
    let first_seq = geo.nr_conv();
    let restart = format!("the cursor restarts at zone {first_seq}");
    let mut saved = SavedZones {
        zones: Vec::with_capacity(nr),
        cursor: first_seq,
    };
    match decode_record(0, rec(0)).and_then(|(v, c)| check_record(&geo, 0, v, c)) {
        Ok((c, _)) => saved.cursor = c as usize,
        Err(e) => problems.push(Problem {
            what: e.replace("the record", "the cursor record"),
            fix: restart.clone(),
        }),
    }
    for i in 0..nr {
        let z = zone(i);
        let entry = decode_record(i as u64 + 1, rec(i + 1))
            .and_then(|(v, c)| check_record(&geo, i as u64 + 1, v, c));
        saved.zones.push(match entry {
            Ok(e) => e,
            Err(e) => {
                let what = if e.starts_with("zone ") {
                    e
                } else {
                    format!("zone {i}: {e}")
                };
                problems.push(Problem {
                    what,
                    fix: format!("zone {i} is marked full"),
                });
                derive(&z, z.start + z.cap)
            }
        });
    }

    // The log: superblocks and the entries that count, replayed in turn.
    match scan_log(node.as_ref(), &header) {
        Ok(mut log) => {
            if log.dropped > 0 {
                say(&format!(
                    "Ignoring {} log entries written after the last flush in an earlier boot (their data may not have reached the disk).",
                    log.dropped
                ));
            }
            if let Some(what) = log.problem.take() {
                problems.push(Problem {
                    what,
                    fix: "it is dropped with the entries after it".into(),
                });
            }
            let kept = std::mem::take(&mut log.kept);
            for (n, e) in kept.into_iter().enumerate() {
                let mut one = log.clone();
                one.kept = vec![e];
                let mut trial = saved.clone();
                if let Err(err) = replay(&geo, &mut trial, &one) {
                    problems.push(Problem {
                        what: err.replace("entry 0", &format!("entry {n}")),
                        fix: format!("log entries from {n} on are dropped"),
                    });
                    break;
                }
                saved = trial;
            }
        }
        Err(e) => {
            problems.push(Problem {
                what: e,
                fix: "a new, empty log is started".into(),
            });
        }
    }

    // Each zone's condition against its write pointer.
    for (i, e) in saved.zones.iter_mut().enumerate() {
        let z = zone(i);
        if !z.fits(e.0, e.1, geo.rules().close_keeps_closed) {
            let (nwp, ncond) = derive(&z, e.0);
            problems.push(Problem {
                what: format!(
                    "zone {i}: condition {} does not fit write pointer {:#x}",
                    e.1.as_u8(),
                    e.0
                ),
                fix: format!("zone {i} gets condition {} at {nwp:#x}", ncond.as_u8()),
            });
            *e = (nwp, ncond);
        }
    }

    // Data the file does not hold cannot be claimed.
    let truncated = len < header.file_len();
    if truncated {
        problems.push(Problem {
            what: format!(
                "the file is truncated: {len} bytes, the geometry needs {}",
                header.file_len()
            ),
            fix: "the file is extended".into(),
        });
        let data_end = len.saturating_sub(header.data_offset);
        for (i, e) in saved.zones.iter_mut().enumerate() {
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
    let zones = &mut saved.zones;
    let (max_open, max_active) = (geo.max_open() as usize, geo.max_active() as usize);
    let open: Vec<usize> = (0..nr).filter(|&i| zones[i].1.is_open()).collect();
    if max_open != 0 && open.len() > max_open {
        for &i in &open[max_open..] {
            let z = zone(i);
            problems.push(Problem {
                what: format!(
                    "zone {i}: {} zones are open, the limit is {max_open}",
                    open.len()
                ),
                fix: format!("zone {i} is closed"),
            });
            zones[i].1 = if zones[i].0 == z.start {
                ZoneCond::Empty
            } else {
                ZoneCond::Closed
            };
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
        let found = match problems.len() {
            1 => "1 error was".to_string(),
            n => format!("{n} errors were"),
        };
        say(&format!(
            "{found} found on the image; zio check --repair can repair them."
        ));
        return Verdict::Corrupt;
    }
    for p in &problems {
        say(&format!("Repairing {}: {}", p.what, p.fix));
    }
    if let Err(e) = ZoneState::from_saved(geo, &saved) {
        say(&format!(
            "ERROR the repaired table is still inconsistent: {e}"
        ));
        return Verdict::Corrupt;
    }
    if let Err(e) = write_repair(&node, path, &header, &saved, truncated) {
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
    Verdict::Repaired
}

/// Writes the repaired state: the whole table, synced; a new, empty log
/// epoch, synced; then, if the file was truncated, its full length.
fn write_repair(
    node: &Arc<dyn BlockDriver>,
    path: &str,
    header: &Header,
    saved: &SavedZones,
    truncated: bool,
) -> io::Result<()> {
    let mut out = Vec::with_capacity((saved.zones.len() + 1) * RECORD as usize);
    out.extend_from_slice(&encode_record(0, saved.cursor as u64, 0));
    for (i, &(wp, cond)) in saved.zones.iter().enumerate() {
        out.extend_from_slice(&encode_record(i as u64 + 1, wp, cond.as_u8()));
    }
    let wf = WriteFlags::default();
    node.write(header.table_offset, &out, wf)?;
    node.flush()?;
    super::zoned::restart_log(node.as_ref(), header)?;
    node.flush()?;
    if truncated {
        let f = std::fs::OpenOptions::new().write(true).open(path)?;
        f.set_len(header.file_len())?;
        f.sync_all()?;
    }
    Ok(())
}

/// The state a write pointer alone implies for a sequential zone (a
/// pointer outside the zone, or between capacity and length, makes it
/// full at its capacity).
fn derive(z: &Zone, wp: u64) -> (u64, ZoneCond) {
    let (s, cap_end, end) = (z.start, z.start + z.cap, z.start + z.len);
    if z.fits(end, ZoneCond::NotWp, false) {
        return (end, ZoneCond::NotWp);
    }
    let wp = wp / 512 * 512;
    match wp {
        w if w == s => (s, ZoneCond::Empty),
        w if w > s && w < cap_end => (w, ZoneCond::Closed),
        w if w == end => (end, ZoneCond::Full),
        _ => (cap_end, ZoneCond::Full),
    }
}
