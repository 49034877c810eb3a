//! Property test: zio's zone rules (`zone_rules::ZoneState`) against a small
//! independent model of Linux null_blk's zone state machine, written from
//! docs/semantics.md (and null_blk's zoned.c, which it summarises).
//!
//! Both are driven with the same random operation sequences (writes,
//! appends, open/close/finish/reset over single zones, ranges, misaligned
//! ranges and the whole device) over several geometries; after every
//! operation the results (Ok, errno or append position), the full zone
//! report and the implicit-close cursor must be identical.
//!
//! Where the reference is silent, the model follows zio's documented API:
//! a zone append of 0 bytes or above `zone_append_max` is EINVAL; a write
//! refused in any of the zones it touches changes nothing; a management
//! range goes on after a failing zone and reports the first error.

#![deny(unsafe_code)]

use zio_block::zone_rules::{Device, Kernel, ZoneConfig, ZoneGeometry, ZoneState};
use zio_block::{Zone, ZoneCond, ZoneOp, ZoneType};

const EIO: i32 = 5;
const EINVAL: i32 = 22;
const EOVERFLOW: i32 = 75;
const ETOOMANYREFS: i32 = 109;

/// Conditions, numbered as the ioctl reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cond {
    NotWp = 0,
    Empty = 1,
    ImpOpen = 2,
    ExpOpen = 3,
    Closed = 4,
    Full = 14,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct MZone {
    start: u64,
    len: u64,
    cap: u64,
    wp: u64,
    conv: bool,
    cond: Cond,
}

#[derive(Clone, Debug)]
struct Model {
    size: u64,
    zone_size: u64,
    nr_conv: usize,
    max_open: u32,
    max_active: u32,
    append_max: u64,
    zones: Vec<MZone>,
    /// Next zone the round-robin implicit close looks at.
    cursor: usize,
}

type R<T> = Result<T, i32>;

impl Model {
    fn new(c: &ZoneConfig) -> Model {
        let nr = c.size.div_ceil(c.zone_size) as usize;
        let nr_seq = (nr - c.nr_conv) as u32;
        // null_blk_init_zoned_dev's clamping.
        let mut max_active = c.max_active;
        let mut max_open = c.max_open;
        if max_active >= nr_seq {
            max_active = 0;
        }
        if max_active != 0 && max_open > max_active {
            max_open = max_active;
        } else if max_open >= nr_seq {
            max_open = 0;
        }
        let cap = c.zone_capacity.unwrap_or(c.zone_size);
        let zones = (0..nr)
            .map(|i| {
                let start = i as u64 * c.zone_size;
                let len = c.zone_size.min(c.size - start);
                if i < c.nr_conv {
                    MZone {
                        start,
                        len,
                        cap: len,
                        wp: start + len,
                        conv: true,
                        cond: Cond::NotWp,
                    }
                } else {
                    MZone {
                        start,
                        len,
                        cap: cap.min(len),
                        wp: start,
                        conv: false,
                        cond: Cond::Empty,
                    }
                }
            })
            .collect();
        Model {
            size: c.size,
            zone_size: c.zone_size,
            nr_conv: c.nr_conv,
            max_open,
            max_active,
            append_max: c.zone_append_max,
            zones,
            cursor: c.nr_conv,
        }
    }

    fn count(&self, f: impl Fn(Cond) -> bool) -> u32 {
        self.zones.iter().filter(|z| f(z.cond)).count() as u32
    }

    fn nr_open(&self) -> u32 {
        self.count(|c| matches!(c, Cond::ImpOpen | Cond::ExpOpen))
    }

    fn nr_active(&self) -> u32 {
        self.count(|c| matches!(c, Cond::ImpOpen | Cond::ExpOpen | Cond::Closed))
    }

    fn check_active(&self) -> R<()> {
        if self.max_active == 0 || self.nr_active() < self.max_active {
            Ok(())
        } else {
            Err(EOVERFLOW)
        }
    }

    /// Open limit reached: close an implicitly open zone if there is one and
    /// the active limit allows it, else ETOOMANYREFS.
    fn check_open(&mut self) -> R<()> {
        if self.max_open == 0 || self.nr_open() < self.max_open {
            return Ok(());
        }
        if self.count(|c| c == Cond::ImpOpen) > 0 && self.check_active().is_ok() {
            self.close_imp_open();
            return Ok(());
        }
        Err(ETOOMANYREFS)
    }

    fn close_imp_open(&mut self) {
        let nr = self.zones.len();
        let mut z = self.cursor;
        for _ in self.nr_conv..nr {
            let this = z;
            z += 1;
            if z >= nr {
                z = self.nr_conv;
            }
            if self.zones[this].cond == Cond::ImpOpen {
                self.close_one(this);
                self.cursor = z;
                return;
            }
        }
        panic!("model: no implicitly open zone to close");
    }

    fn close_one(&mut self, i: usize) {
        let z = &mut self.zones[i];
        z.cond = if z.wp == z.start {
            Cond::Empty
        } else {
            Cond::Closed
        };
    }

    fn check_resources(&mut self, i: usize) -> R<()> {
        match self.zones[i].cond {
            Cond::Empty => {
                self.check_active()?;
                self.check_open()
            }
            Cond::Closed => self.check_open(),
            _ => Ok(()),
        }
    }

    /// A write of `[off, off+len)` inside zone `i`.
    fn write_piece(&mut self, i: usize, off: u64, len: u64) -> R<()> {
        if self.zones[i].conv {
            return Ok(());
        }
        let z = self.zones[i].clone();
        if z.cond == Cond::Full || off != z.wp || z.wp + len > z.start + z.cap {
            return Err(EIO);
        }
        self.check_resources(i)?;
        let z = &mut self.zones[i];
        z.wp += len;
        if z.wp == z.start + z.cap {
            z.cond = Cond::Full;
        } else if z.cond != Cond::ExpOpen {
            z.cond = Cond::ImpOpen;
        }
        Ok(())
    }

    /// A write, split at zone boundaries; all or nothing.
    fn write(&mut self, off: u64, len: u64) -> R<()> {
        let end = off.checked_add(len).ok_or(EIO)?;
        if end > self.size {
            return Err(EIO);
        }
        let mut trial = self.clone();
        let mut pos = off;
        while pos < end {
            let i = (pos / self.zone_size) as usize;
            let zend = (trial.zones[i].start + trial.zones[i].len).min(end);
            trial.write_piece(i, pos, zend - pos)?;
            pos = zend;
        }
        *self = trial;
        Ok(())
    }

    fn append(&mut self, zone_start: u64, len: u64) -> R<u64> {
        if len == 0 || (self.append_max != 0 && len > self.append_max) {
            return Err(EINVAL);
        }
        if zone_start >= self.size || !zone_start.is_multiple_of(self.zone_size) {
            return Err(EIO);
        }
        let i = (zone_start / self.zone_size) as usize;
        if self.zones[i].conv {
            return Err(EIO);
        }
        let pos = self.zones[i].wp;
        let mut trial = self.clone();
        trial.write_piece(i, pos, len)?;
        *self = trial;
        Ok(pos)
    }

    fn mgmt_one(&mut self, op: ZoneOp, i: usize) -> R<()> {
        if self.zones[i].conv {
            return Err(EIO);
        }
        let c = self.zones[i].cond;
        match op {
            ZoneOp::Open => match c {
                Cond::ExpOpen => {}
                Cond::Empty | Cond::Closed => {
                    self.check_resources(i)?;
                    self.zones[i].cond = Cond::ExpOpen;
                }
                Cond::ImpOpen => self.zones[i].cond = Cond::ExpOpen,
                _ => return Err(EIO),
            },
            ZoneOp::Close => match c {
                Cond::Closed => {}
                Cond::ImpOpen | Cond::ExpOpen => self.close_one(i),
                _ => return Err(EIO),
            },
            ZoneOp::Finish => {
                match c {
                    Cond::Full => return Ok(()),
                    Cond::Empty | Cond::Closed => self.check_resources(i)?,
                    Cond::ImpOpen | Cond::ExpOpen => {}
                    Cond::NotWp => return Err(EIO),
                }
                let z = &mut self.zones[i];
                z.wp = z.start + z.len;
                z.cond = Cond::Full;
            }
            ZoneOp::Reset => {
                let z = &mut self.zones[i];
                z.wp = z.start;
                z.cond = Cond::Empty;
            }
        }
        Ok(())
    }

    fn mgmt(&mut self, op: ZoneOp, off: u64, len: u64) -> R<()> {
        let end = off.checked_add(len);
        let ok = len > 0
            && matches!(end, Some(e) if e <= self.size)
            && off.is_multiple_of(self.zone_size)
            && (len.is_multiple_of(self.zone_size) || end == Some(self.size));
        if !ok {
            return Err(EINVAL);
        }
        if op == ZoneOp::Reset && off == 0 && len == self.size {
            for i in self.nr_conv..self.zones.len() {
                self.mgmt_one(ZoneOp::Reset, i)?;
            }
            return Ok(());
        }
        let first = (off / self.zone_size) as usize;
        let last = ((off + len - 1) / self.zone_size) as usize;
        let mut res = Ok(());
        for i in first..=last {
            if let Err(e) = self.mgmt_one(op, i)
                && res.is_ok()
            {
                res = Err(e);
            }
        }
        res
    }

    fn report(&self) -> Vec<(u64, u64, u64, u64, u8, u8)> {
        self.zones
            .iter()
            .map(|z| {
                (
                    z.start,
                    z.len,
                    z.cap,
                    z.wp,
                    if z.conv { 1 } else { 2 },
                    z.cond as u8,
                )
            })
            .collect()
    }
}

fn zio_report(st: &ZoneState) -> Vec<(u64, u64, u64, u64, u8, u8)> {
    st.report(0, usize::MAX)
        .iter()
        .map(|z: &Zone| (z.start, z.len, z.cap, z.wp, z.ztype.as_u8(), z.cond.as_u8()))
        .collect()
}

fn errno_of(e: std::io::Error) -> i32 {
    e.raw_os_error().expect("zio errors carry an errno")
}

use zio_block::rng::Rng;

const ZS: u64 = 64 * 1024;
const BS: u64 = 4096;

/// Geometries: capacity below size, conventional zones, a smaller last
/// zone, open/active limits (some clamped), an append limit.
fn geometries() -> Vec<ZoneConfig> {
    let g = |zones: u64,
             extra: u64,
             cap: Option<u64>,
             conv: usize,
             open: u32,
             active: u32,
             append: u64| ZoneConfig {
        size: zones * ZS + extra,
        zone_size: ZS,
        zone_capacity: cap,
        nr_conv: conv,
        max_open: open,
        max_active: active,
        zone_append_max: append,
        kernel: Kernel::V6_1,
        device: Device::NullBlk,
    };
    vec![
        g(8, 0, None, 0, 0, 0, 0),
        g(8, 0, None, 1, 2, 0, 0),
        g(8, 0, Some(ZS - 4 * BS), 1, 2, 3, 0),
        g(10, 8 * BS, Some(ZS / 2), 2, 3, 3, 2 * BS),
        g(6, 0, None, 1, 1, 2, 0),
        g(6, 0, Some(ZS - BS), 0, 0, 2, 0),
        g(12, 0, None, 1, 4, 2, 0), // open clamped to active
        g(5, 0, None, 1, 4, 4, 0),  // both limits >= sequential zones: none
        g(7, 2 * BS, None, 3, 1, 0, 0),
        g(9, 0, Some(3 * BS), 1, 2, 4, BS),
        g(16, 0, Some(ZS - 8 * BS), 2, 3, 5, 0),
    ]
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Write(u64, u64),
    Append(u64, u64),
    Mgmt(ZoneOp, u64, u64),
    /// Report from an offset, at most n zones.
    Report(u64, usize),
}

fn random_op(rng: &mut Rng, m: &Model) -> Op {
    let nr = m.zones.len() as u64;
    let z = &m.zones[rng.below(nr) as usize];
    let blocks = |rng: &mut Rng| (1 + rng.below(6)) * BS;
    match rng.below(20) {
        0..=5 => {
            // Mostly at the write pointer; sometimes elsewhere, crossing a
            // boundary, reaching the capacity exactly or past the end.
            let off = match rng.below(8) {
                0 => z.start + rng.below(z.len / BS) * BS,
                1 => (z.start + z.len).saturating_sub(BS * (1 + rng.below(2))),
                2 => rng.below(m.size + 2 * BS),
                _ => z.wp.min(z.start + z.len - BS),
            };
            let len = match rng.below(10) {
                0 => z.start + z.cap - off.min(z.start + z.cap),
                1 => rng.below(2 * ZS) + 1,
                2 => 0,
                3 => u64::MAX - rng.below(4),
                _ => blocks(rng),
            };
            Op::Write(off, len)
        }
        6..=8 => {
            let start = match rng.below(12) {
                0 => z.start + BS,
                1 => m.size + rng.below(2) * ZS,
                _ => z.start,
            };
            let len = match rng.below(12) {
                0 => 0,
                1 => z.cap,
                2 => 3 * BS,
                _ => blocks(rng),
            };
            Op::Append(start, len)
        }
        9..=18 => {
            let op =
                [ZoneOp::Open, ZoneOp::Close, ZoneOp::Finish, ZoneOp::Reset][rng.below(4) as usize];
            let (off, len) = match rng.below(16) {
                0 => (0, m.size),
                1 => {
                    let n = 1 + rng.below(4);
                    (z.start, (n * ZS).min(m.size - z.start))
                }
                2 => (z.start + BS * rng.below(2), ZS - BS * rng.below(2)),
                3 => (z.start, 0),
                4 => (z.start, m.size - z.start),
                5 => (m.size.div_ceil(ZS) * ZS, ZS),
                6 => (u64::MAX - ZS + 1, ZS),
                _ => (z.start, z.len),
            };
            Op::Mgmt(op, off, len)
        }
        _ => Op::Report(rng.below(m.size + ZS), rng.below(nr + 2) as usize),
    }
}

fn run_op(st: &mut ZoneState, m: &mut Model, op: Op) -> (R<u64>, R<u64>) {
    match op {
        Op::Write(off, len) => {
            let z = st.check_write(off, len).map(|plan| {
                st.apply_write(&plan);
                0
            });
            (z.map_err(errno_of), m.write(off, len).map(|()| 0))
        }
        Op::Append(start, len) => {
            let z = st
                .check_append(start, len)
                .map(|plan| st.apply_append(&plan));
            (z.map_err(errno_of), m.append(start, len))
        }
        Op::Mgmt(op, off, len) => (
            st.zone_mgmt(op, off, len).map(|()| 0).map_err(errno_of),
            m.mgmt(op, off, len).map(|()| 0),
        ),
        Op::Report(off, max) => {
            let got = st.report(off, max);
            let want: Vec<_> = if off >= m.size {
                Vec::new()
            } else {
                m.report()
                    .into_iter()
                    .skip((off / m.zone_size) as usize)
                    .take(max)
                    .collect()
            };
            let got: Vec<_> = got
                .iter()
                .map(|z| (z.start, z.len, z.cap, z.wp, z.ztype.as_u8(), z.cond.as_u8()))
                .collect();
            assert_eq!(got, want, "report({off}, {max}) differs");
            (Ok(got.len() as u64), Ok(want.len() as u64))
        }
    }
}

fn dump(st: &ZoneState, m: &Model) -> String {
    let mut s = format!(
        "zio: cursor {} counts {:?}\nmodel: cursor {} open {} active {}\n",
        st.cursor(),
        st.counts(),
        m.cursor,
        m.nr_open(),
        m.nr_active()
    );
    for (i, (a, b)) in zio_report(st).iter().zip(m.report()).enumerate() {
        let mark = if *a == b { "" } else { "   <-- differs" };
        s += &format!(
            "zone {i:2}: zio wp {:#x} cond {:2} | model wp {:#x} cond {:2}{mark}\n",
            a.3, a.5, b.3, b.5
        );
    }
    s
}

#[test]
fn zio_zone_rules_match_the_null_blk_model() {
    const SEQUENCES: u64 = 600;
    const OPS: usize = 250;
    let geos = geometries();
    let mut seen_errors = std::collections::BTreeSet::new();
    let mut conds_seen = std::collections::BTreeSet::new();
    for seed in 0..SEQUENCES {
        let cfg = geos[(seed as usize) % geos.len()];
        let geo = ZoneGeometry::new(&cfg).expect("valid geometry");
        let mut st = ZoneState::new(geo);
        let mut m = Model::new(&cfg);
        assert_eq!(
            (geo.max_open(), geo.max_active()),
            (m.max_open, m.max_active),
            "seed {seed}: clamped limits differ for {cfg:?}"
        );
        let mut rng = Rng::new(seed);
        let mut history: Vec<Op> = Vec::new();
        for i in 0..OPS {
            let op = random_op(&mut rng, &m);
            history.push(op);
            let before = dump(&st, &m);
            let (got, want) = run_op(&mut st, &mut m, op);
            let same_state = zio_report(&st) == m.report() && st.cursor() == m.cursor;
            if got != want || !same_state {
                panic!(
                    "seed {seed}, op {i}: {op:?} on {cfg:?}\n\
                     zio {got:?}, model {want:?}\n\
                     before:\n{before}after:\n{}\nops so far: {history:?}",
                    dump(&st, &m)
                );
            }
            if let Err(e) = got {
                seen_errors.insert(e);
            }
            for z in st.report(0, usize::MAX) {
                conds_seen.insert(z.cond.as_u8());
                assert!(z.ztype != ZoneType::SeqWritePreferred);
            }
        }
    }
    // The sequences reach every error and every condition the model has.
    for e in [EIO, EINVAL, EOVERFLOW, ETOOMANYREFS] {
        assert!(seen_errors.contains(&e), "errno {e} never produced");
    }
    for c in [
        ZoneCond::NotWp,
        ZoneCond::Empty,
        ZoneCond::ImplicitOpen,
        ZoneCond::ExplicitOpen,
        ZoneCond::Closed,
        ZoneCond::Full,
    ] {
        assert!(conds_seen.contains(&c.as_u8()), "{c:?} never reached");
    }
}

/// The implicit-close cursor, step by step, on a hand-written sequence
/// (the reference's round robin), in both.
#[test]
fn round_robin_implicit_close_by_hand() {
    let cfg = ZoneConfig {
        size: 6 * ZS,
        zone_size: ZS,
        zone_capacity: None,
        nr_conv: 1,
        max_open: 2,
        max_active: 0,
        zone_append_max: 0,
        kernel: Kernel::V6_1,
        device: Device::NullBlk,
    };
    let mut st = ZoneState::new(ZoneGeometry::new(&cfg).unwrap());
    let mut m = Model::new(&cfg);
    let w = |st: &mut ZoneState, m: &mut Model, z: u64| {
        let off = st.zone(z as usize).wp;
        let (a, b) = run_op(st, m, Op::Write(off, BS));
        assert_eq!(a, b);
        assert_eq!(zio_report(st), m.report());
        assert_eq!(st.cursor(), m.cursor);
        a
    };
    w(&mut st, &mut m, 1).unwrap();
    w(&mut st, &mut m, 2).unwrap();
    assert_eq!(m.cursor, 1);
    w(&mut st, &mut m, 3).unwrap(); // closes 1, cursor -> 2
    assert_eq!((m.zones[1].cond, m.cursor), (Cond::Closed, 2));
    w(&mut st, &mut m, 4).unwrap(); // closes 2, cursor -> 3
    assert_eq!((m.zones[2].cond, m.cursor), (Cond::Closed, 3));
    w(&mut st, &mut m, 1).unwrap(); // reopens 1 by closing 3, cursor -> 4
    assert_eq!((m.zones[3].cond, m.cursor), (Cond::Closed, 4));
    // Explicitly open both slots: a write to a closed zone is refused.
    let (a, b) = run_op(&mut st, &mut m, Op::Mgmt(ZoneOp::Open, 5 * ZS, ZS));
    assert_eq!((a, b), (Ok(0), Ok(0)));
    let (a, b) = run_op(&mut st, &mut m, Op::Mgmt(ZoneOp::Open, 2 * ZS, ZS));
    assert_eq!((a, b), (Ok(0), Ok(0)));
    assert_eq!(w(&mut st, &mut m, 3), Err(ETOOMANYREFS));
}
