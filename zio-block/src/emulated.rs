//! The engine behind every emulated zoned device (`null` with `zoned=on`,
//! the `zoned` image): it applies the zone rules of `zone_rules` to a data
//! store, with null_blk's behaviour around them.
//!
//! Locking: a zone lock serialises requests to that zone (so zone appends
//! each land whole at a distinct position). Zones share [`ZONE_LOCKS`]
//! striped locks (zone `i` takes lock `i % ZONE_LOCKS`), taken in lock
//! order, so a command over every zone takes a bounded number of locks;
//! the state lock is held
//! from the judgement of a write, append or zone operation until its data
//! is stored and its new state committed to the store, so the store sees
//! one command at a time, in order, and each commit is the whole change of
//! one command. Reads take the state lock only to learn the write pointers.
//!
//! Requests: a write command arrives as ONE vectored request (its buffers
//! are never joined into one), which the engine cuts and judges as Linux
//! does one O_DIRECT write to the device (`zone_rules::split_write`,
//! `zone_rules::ChainResult`). Zone management checks the range with
//! `zone_rules::check_mgmt`, as the host_device driver does.
//!
//! What it prints: the emulated devices stand in for /dev/nullb0 behind
//! QEMU's host_device driver, so a failed zone management command carries
//! the same diagnostic line host_device prints for it (the misaligned
//! range, the conventional zone, or `ioctl BLKxxxZONE failed -ERRNO` for
//! what the device refuses): one golden output holds on both.
//!
//! Failure: if the store fails the data or the commit, the command's state
//! change is rolled back (`ZoneState::rollback`) and the error returned,
//! so a failed write never moves a write pointer. Data reaches the store
//! before the commit that claims it; a reset is committed and flushed
//! before its data is discarded; a finish makes the range it exposes read
//! as never written before it is committed. Requests not aligned to 512
//! bytes are widened with read-modify-write, as an O_DIRECT bounce buffer
//! does on a real device.

use std::io;
use std::sync::{Mutex, MutexGuard};

use super::OptionMap;
use super::driver::OnProgress;
use super::zone::{Zone, ZoneInfo, ZoneModel, ZoneOp};
use super::zone_rules::{
    self, ChainResult, Device, Dirty, Kernel, Mark, ZoneCond, ZoneConfig, ZoneError, ZoneGeometry,
    ZoneState,
};

/// Logical block size of the emulated devices.
pub const SECTOR: u64 = 512;

/// null_blk's default zone size.
pub const DEFAULT_ZONE_SIZE: u64 = 256 << 20;

/// The zone options of emulated devices, named after null_blk's module
/// parameters (sizes in bytes here, with suffixes).
pub const ZONE_OPTIONS: &[&str] = &[
    "zone_size",
    "zone_capacity",
    "zone_nr_conv",
    "zone_max_open",
    "zone_max_active",
    "zone_append_max",
];

/// Takes the zone options from `opts` (null_blk's defaults for what is
/// missing: 256 MiB zones, capacity = size, no conventional zones, no
/// limits) for a device of `size` bytes.
pub fn take_zone_config(opts: &mut OptionMap, size: u64) -> Result<ZoneConfig, String> {
    let mut count = |key: &str| -> Result<u64, String> {
        match opts.take(key) {
            None => Ok(0),
            Some(v) => v
                .parse::<u64>()
                .map_err(|_| format!("Parameter '{key}' expects a whole number, got '{v}'")),
        }
    };
    let nr_conv = count("zone_nr_conv")?;
    let max_open = count("zone_max_open")?;
    let max_active = count("zone_max_active")?;
    let too_many = |key: &str| format!("Parameter '{key}' is too large");
    Ok(ZoneConfig {
        size,
        zone_size: opts.take_size("zone_size")?.unwrap_or(DEFAULT_ZONE_SIZE),
        zone_capacity: opts.take_size("zone_capacity")?,
        nr_conv: usize::try_from(nr_conv).map_err(|_| too_many("zone_nr_conv"))?,
        max_open: u32::try_from(max_open).map_err(|_| too_many("zone_max_open"))?,
        max_active: u32::try_from(max_active).map_err(|_| too_many("zone_max_active"))?,
        zone_append_max: opts.take_size("zone_append_max")?.unwrap_or(0),
        kernel: match opts.take("kernel") {
            None => Kernel::default(),
            Some(k) => Kernel::parse(&k)
                .ok_or_else(|| format!("Parameter 'kernel' expects 6.1 or 6.12, got '{k}'"))?,
        },
        device: match opts.take("device") {
            None => Device::default(),
            Some(d) => Device::parse(&d).ok_or_else(|| {
                format!("Parameter 'device' expects null_blk, nvme-zns or scsi-zbc, got '{d}'")
            })?,
        },
    })
}

/// The zone fault options of emulated devices, after null_blk's configfs
/// attributes `zone_readonly` and `zone_offline`: zone indices separated by
/// `:` (commas separate options). The `zoned` image also takes
/// `zone_restore`, which brings such zones back, empty.
pub const FAULT_OPTIONS: &[&str] = &["zone_readonly", "zone_offline"];

/// Zone faults asked for at open: zone indices per option.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ZoneFaults {
    pub readonly: Vec<usize>,
    pub offline: Vec<usize>,
    pub restore: Vec<usize>,
}

/// Parses `I[:J...]` for option `key`.
fn zone_list(opts: &mut OptionMap, key: &str) -> Result<Vec<usize>, String> {
    let Some(v) = opts.take(key) else {
        return Ok(Vec::new());
    };
    v.split(':')
        .map(|s| {
            s.parse::<usize>().map_err(|_| {
                format!("Parameter '{key}' expects zone numbers separated by ':', got '{v}'")
            })
        })
        .collect()
}

/// Takes `zone_readonly` and `zone_offline` (and with `restore`,
/// `zone_restore`) from `opts`. A zone named by two of them is an error.
pub fn take_zone_faults(opts: &mut OptionMap, restore: bool) -> Result<ZoneFaults, String> {
    let f = ZoneFaults {
        readonly: zone_list(opts, "zone_readonly")?,
        offline: zone_list(opts, "zone_offline")?,
        restore: if restore {
            zone_list(opts, "zone_restore")?
        } else {
            Vec::new()
        },
    };
    let lists = [
        ("zone_readonly", &f.readonly),
        ("zone_offline", &f.offline),
        ("zone_restore", &f.restore),
    ];
    for (a, (ka, la)) in lists.iter().enumerate() {
        for (kb, lb) in &lists[a + 1..] {
            if let Some(i) = la.iter().find(|i| lb.contains(i)) {
                return Err(format!("Zone {i} is given in both '{ka}' and '{kb}'"));
            }
        }
    }
    Ok(f)
}

impl ZoneFaults {
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.readonly.is_empty() && self.offline.is_empty() && self.restore.is_empty()
    }

    /// Applies the faults to `st` (null_blk's `null_set_zone_cond`: the
    /// zone's resources are released and its write pointer goes to the zone
    /// end; its data stays). A zone already in the asked condition is left
    /// alone; a restored zone that is not read-only or offline too. Returns
    /// the `(start, len)` of each restored zone, whose data the caller
    /// discards. An index that is out of range or conventional is an error
    /// naming it, with nothing changed.
    pub fn apply(&self, st: &mut ZoneState) -> Result<Vec<(u64, u64)>, String> {
        let g = *st.geometry();
        for (key, list) in [
            ("zone_readonly", &self.readonly),
            ("zone_offline", &self.offline),
            ("zone_restore", &self.restore),
        ] {
            for &i in list {
                if i >= g.nr_zones() {
                    return Err(format!(
                        "Parameter '{key}': zone {i} does not exist (the device has {} zones)",
                        g.nr_zones()
                    ));
                }
                if i < g.nr_conv() {
                    return Err(format!(
                        "Parameter '{key}': zone {i} is conventional (only sequential zones can be made read-only or offline)"
                    ));
                }
            }
        }
        let mut restored = Vec::new();
        let errno_text = |e: io::Error| super::strerror(&e);
        for &i in &self.restore {
            let z = st.zone(i);
            if matches!(z.cond, ZoneCond::ReadOnly | ZoneCond::Offline) {
                st.set_condition(i, ZoneCond::Empty).map_err(errno_text)?;
                restored.push((z.start, z.len));
            }
        }
        for (list, cond) in [
            (&self.readonly, ZoneCond::ReadOnly),
            (&self.offline, ZoneCond::Offline),
        ] {
            for &i in list {
                if st.zone(i).cond != cond {
                    st.set_condition(i, cond).map_err(errno_text)?;
                }
            }
        }
        Ok(restored)
    }
}

/// Where an emulated zoned device keeps its bytes (and, if persistent, its
/// zone state). The engine calls it with its state lock held, one command
/// at a time.
pub trait ZoneStore: Send + Sync {
    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    fn write(&self, offset: u64, buf: &[u8]) -> io::Result<()>;
    /// The data of a reset zone is no longer needed (called only once the
    /// reset is committed and flushed).
    fn discard(&self, offset: u64, len: u64) -> io::Result<()>;
    /// `[offset, offset + len)` becomes readable without being written (a
    /// finished zone's unwritten end): make it read as never written, in
    /// case a write that failed or was cut short left bytes there.
    fn expose(&self, _offset: u64, _len: u64) -> io::Result<()> {
        Ok(())
    }
    /// Records one command's change: the current state of `dirty.zones`
    /// (and the cursor, if it moved), all at once or not at all. Called only
    /// once the data those zones claim is stored.
    fn commit(&self, _state: &ZoneState, _dirty: &Dirty) -> io::Result<()> {
        Ok(())
    }
    /// Makes every stored byte and committed change durable.
    fn flush(&self) -> io::Result<()> {
        Ok(())
    }
}

/// The `BlockDriver` methods every emulated zoned node forwards to its
/// engine (`$dev`, an [`EmulatedZoned`] field): length, read and the zone
/// operations. As on Linux, nothing judges a write as a whole before it is
/// done (see [`EmulatedZoned::write`]): each request of it is judged when
/// it reaches the device.
macro_rules! forward_to_engine {
    ($dev:ident) => {
        fn length(&self) -> std::io::Result<u64> {
            Ok(self.$dev.size())
        }

        fn read(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
            self.$dev.read(offset, buf)
        }

        fn zone_info(&self) -> Option<$crate::ZoneInfo> {
            Some(self.$dev.zone_info())
        }

        fn zone_report(&self, offset: u64, max: usize) -> std::io::Result<Vec<$crate::Zone>> {
            self.$dev.report(offset, max)
        }

        fn zone_mgmt(
            &self,
            op: $crate::ZoneOp,
            offset: u64,
            len: u64,
        ) -> Result<(), $crate::ZoneError> {
            self.$dev.zone_mgmt(op, offset, len)
        }

        fn zone_append(&self, zone_start: u64, data: &[u8]) -> std::io::Result<u64> {
            self.$dev.append(zone_start, data)
        }
    };
}
pub(crate) use forward_to_engine;

/// Most zone locks a device has (see the module comment).
pub const ZONE_LOCKS: usize = 1024;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub struct EmulatedZoned<S> {
    store: S,
    /// The state's geometry, which never changes: read without the lock.
    geo: ZoneGeometry,
    state: Mutex<ZoneState>,
    /// Zone `i`'s lock is `zone_locks[i % zone_locks.len()]`.
    zone_locks: Vec<Mutex<()>>,
}

impl<S: ZoneStore> EmulatedZoned<S> {
    pub fn new(store: S, state: ZoneState) -> Self {
        let geo = *state.geometry();
        EmulatedZoned {
            store,
            geo,
            state: Mutex::new(state),
            zone_locks: (0..geo.nr_zones().min(ZONE_LOCKS))
                .map(|_| Mutex::new(()))
                .collect(),
        }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn size(&self) -> u64 {
        self.geo.size()
    }

    /// Zone indices `[first, last]` touched by `[offset, offset + len)`,
    /// clipped to the device (none when it starts past the end).
    fn zone_span(&self, offset: u64, len: u64) -> Option<(usize, usize)> {
        let g = &self.geo;
        if offset >= g.size() {
            return None;
        }
        let end = offset.saturating_add(len.max(1)).min(g.size());
        Some((g.zone_index(offset), g.zone_index(end - 1)))
    }

    /// Takes the locks of zones `[first, last]`, in lock order (so two
    /// commands never wait for each other crosswise): each once, all of
    /// them for a span of as many zones as there are locks.
    fn lock_zones(&self, span: Option<(usize, usize)>) -> Vec<MutexGuard<'_, ()>> {
        let Some((a, b)) = span else {
            return Vec::new();
        };
        let n = self.zone_locks.len();
        if b - a + 1 >= n {
            return self.zone_locks.iter().map(lock).collect();
        }
        let (first, last) = (a % n, b % n);
        if first <= last {
            self.zone_locks[first..=last].iter().map(lock).collect()
        } else {
            // Wraps past the last lock: the low ones first.
            self.zone_locks[..=last]
                .iter()
                .chain(&self.zone_locks[first..])
                .map(lock)
                .collect()
        }
    }

    /// Commits the changes since `mark` to the store, or rolls them back if
    /// the store fails (or `stored` already failed). On success the changes
    /// stay to be taken (returned as committed), so a caller can still take
    /// them back; on failure they are gone.
    fn try_commit(
        &self,
        st: &mut ZoneState,
        mark: Mark,
        stored: io::Result<()>,
    ) -> io::Result<Dirty> {
        let dirty = st.peek_changes();
        let r = stored.and_then(|()| {
            if dirty.zones.is_empty() && !dirty.cursor_moved {
                Ok(())
            } else {
                self.store.commit(st, &dirty)
            }
        });
        if let Err(e) = r {
            st.rollback(mark);
            st.take_changes();
            return Err(e);
        }
        Ok(dirty)
    }

    /// [`try_commit`](Self::try_commit), the changes then taken.
    fn commit(&self, st: &mut ZoneState, mark: Mark, stored: io::Result<()>) -> io::Result<()> {
        self.try_commit(st, mark, stored)?;
        st.take_changes();
        Ok(())
    }

    /// Reads with the zone locks held: stored data, with 0xff at or after
    /// each sequential zone's write pointer.
    fn read_locked(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let fill = lock(&self.state).read_fill(offset, buf.len() as u64)?;
        self.store.read(offset, buf)?;
        for (at, n) in fill {
            let from = (at - offset) as usize;
            buf[from..from + n as usize].fill(self.geo.rules().unwritten);
        }
        Ok(())
    }

    pub fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let _g = self.lock_zones(self.zone_span(offset, buf.len() as u64));
        self.read_locked(offset, buf)
    }

    pub fn write(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.writev(offset, &[buf], &|_| {})
    }

    /// Writes the concatenation of `bufs` at `offset` as one request (see
    /// [`write_locked`](Self::write_locked)); `progress` hears of the bytes
    /// stored as they are.
    pub fn writev(&self, offset: u64, bufs: &[&[u8]], progress: OnProgress<'_>) -> io::Result<()> {
        let len: u64 = bufs.iter().map(|b| b.len() as u64).sum();
        if len == 0 {
            return Ok(());
        }
        let start = offset / SECTOR * SECTOR;
        let end = (offset + len).div_ceil(SECTOR) * SECTOR;
        let _g = self.lock_zones(self.zone_span(start, end - start));
        if start == offset && end == offset + len {
            return self.write_locked(offset, bufs, progress);
        }
        // Widen to whole sectors with what the device holds around it: a
        // short request in one bounce buffer; a long one keeps its own
        // buffers for the whole sectors and bounces only its first and
        // last sector.
        if end - start <= 2 * SECTOR {
            let mut bounce = vec![0u8; (end - start) as usize];
            self.read_locked(start, &mut bounce)?;
            let at = (offset - start) as usize;
            gather(bufs, 0, &mut bounce[at..at + len as usize]);
            return self.write_locked(start, &[&bounce], progress);
        }
        let lead = offset - start;
        let trail = end - (offset + len);
        let mut head = [0u8; SECTOR as usize];
        let mut tail = [0u8; SECTOR as usize];
        let mut iov: Vec<&[u8]> = Vec::new();
        let from = if lead > 0 { SECTOR - lead } else { 0 };
        let to = if trail > 0 {
            len - (SECTOR - trail)
        } else {
            len
        };
        if lead > 0 {
            self.read_locked(start, &mut head)?;
            gather(bufs, 0, &mut head[lead as usize..]);
        }
        if trail > 0 {
            self.read_locked(end - SECTOR, &mut tail)?;
            gather(bufs, to, &mut tail[..(SECTOR - trail) as usize]);
        }
        if lead > 0 {
            iov.push(&head);
        }
        let mut cursor = Cursor::new(bufs);
        cursor.each(from, to, |piece| {
            iov.push(piece);
            Ok(())
        })?;
        if trail > 0 {
            iov.push(&tail);
        }
        self.write_locked(start, &iov, progress)
    }

    /// Writes the sector-aligned concatenation of `bufs` at `offset` as
    /// Linux does one O_DIRECT write to the device it emulates: the block layer splits
    /// it at zone boundaries and into requests of at most the device's
    /// [`max_request`](zone_rules::Device::max_request) bytes
    /// ([`zone_rules::split_write`]), and the device judges each
    /// request on its own, in order. A refused request changes nothing,
    /// but the ones accepted before or after it stay written (a write
    /// crossing into a zone that cannot take it still fills the first
    /// zone; one passing the capacity leaves the requests below it). The
    /// error returned is the last request's if it failed, else the first
    /// failed request's ([`ChainResult`]). If the store fails, the whole
    /// write is taken back and the store's error returned.
    fn write_locked(
        &self,
        offset: u64,
        bufs: &[&[u8]],
        progress: OnProgress<'_>,
    ) -> io::Result<()> {
        let size = self.geo.size();
        let len: u64 = bufs.iter().map(|b| b.len() as u64).sum();
        if offset.checked_add(len).is_none_or(|end| end > size) {
            // Past the device end: refused whole, before any split.
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        // Judge every request, then store the data of the accepted ones
        // (runs of adjacent requests stored together), then commit the
        // change once.
        let mut result = ChainResult::default();
        let mut accepted: Vec<(u64, u64)> = Vec::new();
        let mut st = lock(&self.state);
        let mark = st.mark();
        let max_request = self.geo.device().max_request(self.geo.kernel());
        for (pos, n) in
            zone_rules::split_write(offset, len, self.geo.zone_size(), size, max_request)
        {
            let r = st.check_write(pos, n).map(|plan| {
                st.apply_write(&plan);
                match accepted.last_mut() {
                    Some((at, l)) if *at + *l == pos => *l += n,
                    _ => accepted.push((pos, n)),
                }
            });
            result.add(r);
        }
        if result.failed() {
            // QEMU's host_device re-reads the zone at a failed write's
            // offset (file-posix's update_zones_wp): on Linux 6.12 that
            // report makes the block layer take writes to it again.
            st.reported(offset, 1);
        }
        let mut cursor = Cursor::new(bufs);
        let stored = accepted.iter().try_for_each(|&(at, n)| {
            let mut pos = at;
            cursor.each(at - offset, at - offset + n, |piece| {
                self.store.write(pos, piece)?;
                pos += piece.len() as u64;
                progress(piece.len() as u64);
                Ok(())
            })
        });
        self.commit(&mut st, mark, stored)?;
        result.finish()
    }

    /// Appends `data` at the write pointer of the zone starting at
    /// `zone_start`; returns where it landed. Data that is not a whole
    /// number of sectors is padded with what unwritten bytes read as.
    pub fn append(&self, zone_start: u64, data: &[u8]) -> io::Result<u64> {
        let span = self.zone_span(zone_start, 1);
        let _g = self.lock_zones(span);
        let padded_len = (data.len() as u64).div_ceil(SECTOR) * SECTOR;
        let mut st = lock(&self.state);
        let mark = st.mark();
        let plan = st.check_append(zone_start, padded_len)?;
        let pos = st.apply_append(&plan);
        let stored = if padded_len == data.len() as u64 {
            self.store.write(pos, data)
        } else {
            let mut padded = vec![self.geo.rules().unwritten; padded_len as usize];
            padded[..data.len()].copy_from_slice(data);
            self.store.write(pos, &padded)
        };
        self.commit(&mut st, mark, stored)?;
        Ok(pos)
    }

    pub fn report(&self, offset: u64, max: usize) -> io::Result<Vec<Zone>> {
        let mut st = lock(&self.state);
        let zones = st.report(offset, max);
        // The block layer learns the reported write pointers (Linux 6.12).
        st.reported(offset, zones.len());
        Ok(zones)
    }

    /// Zone management as /dev/nullb0 behind QEMU's host_device does it:
    /// the checks of [`zone_rules::check_mgmt`] with their lines, then the
    /// device's answer, a failure of which carries the line host_device
    /// prints for a failed ioctl.
    pub fn zone_mgmt(&self, op: ZoneOp, offset: u64, len: u64) -> Result<(), ZoneError> {
        let g = &self.geo;
        zone_rules::check_mgmt(g.zone_size(), g.nr_conv() as u64, g.size(), offset, len)?;
        self.zone_mgmt_device(op, offset, len)
            .map_err(|e| ZoneError::ioctl_failed(op, e))
    }

    /// What the device does with a zone management command.
    fn zone_mgmt_device(&self, op: ZoneOp, offset: u64, len: u64) -> io::Result<()> {
        let span = self.zone_span(offset, len);
        let _g = self.lock_zones(span);
        let mut st = lock(&self.state);
        let mark = st.mark();
        let outcome = st.zone_mgmt_outcome(op, offset, len);
        // What a finish exposes reads as never written before the finish
        // is recorded (a kill in between leaves the old write pointer over
        // the same data).
        let exposed = outcome
            .exposed
            .iter()
            .try_for_each(|&(at, n)| self.store.expose(at, n));
        let dirty = self.try_commit(&mut st, mark, exposed)?;
        if !outcome.reset.is_empty() {
            // A reset gives up data: it is made durable before the data is
            // discarded, so neither a kill nor a power loss can leave a
            // write pointer over discarded bytes. If that fails, the reset
            // is taken back and the old records committed again. Discarding
            // is advisory (unwritten bytes read as such whatever the store
            // holds).
            if let Err(e) = self.store.flush() {
                st.rollback(mark);
                let _ = self.store.commit(&st, &dirty);
                st.take_changes();
                return Err(e);
            }
            for &(start, n) in &outcome.reset {
                let _ = self.store.discard(start, n);
            }
        }
        st.take_changes();
        outcome.result
    }

    pub fn zone_info(&self) -> ZoneInfo {
        let g = &self.geo;
        ZoneInfo {
            model: ZoneModel::HostManaged,
            zone_size: g.zone_size(),
            zone_capacity: g.zone_capacity(),
            nr_zones: g.nr_zones() as u64,
            nr_conv: g.nr_conv() as u64,
            max_open: g.max_open() as u64,
            max_active: g.max_active() as u64,
            max_append: g.zone_append_max(),
            write_granularity: SECTOR,
            kernel: g.kernel().series(),
            device: g.device().name(),
        }
    }

    pub fn flush(&self) -> io::Result<()> {
        self.store.flush()
    }
}

/// Copies the bytes of the concatenation of `bufs` from `from` into `out`.
fn gather(bufs: &[&[u8]], from: u64, out: &mut [u8]) {
    let mut done = 0;
    let mut cursor = Cursor::new(bufs);
    let _ = cursor.each(from, from + out.len() as u64, |piece| {
        out[done..done + piece.len()].copy_from_slice(piece);
        done += piece.len();
        Ok(())
    });
}

/// Walks the concatenation of a request's buffers in ascending ranges
/// without joining them.
struct Cursor<'a, 'b> {
    bufs: &'b [&'a [u8]],
    /// The buffer the last range ended in, and its offset in the request.
    idx: usize,
    base: u64,
}

impl<'a, 'b> Cursor<'a, 'b> {
    fn new(bufs: &'b [&'a [u8]]) -> Self {
        Cursor {
            bufs,
            idx: 0,
            base: 0,
        }
    }

    /// Calls `f` with the pieces of the buffers that make up `[from, to)`
    /// of the request, in order. `from` must not be below the start of the
    /// previous range.
    fn each(
        &mut self,
        from: u64,
        to: u64,
        mut f: impl FnMut(&'a [u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        while self.idx < self.bufs.len() && self.base + self.bufs[self.idx].len() as u64 <= from {
            self.base += self.bufs[self.idx].len() as u64;
            self.idx += 1;
        }
        let (mut i, mut base) = (self.idx, self.base);
        while i < self.bufs.len() && base < to {
            let b = self.bufs[i];
            let lo = from.max(base) - base;
            let hi = to.min(base + b.len() as u64) - base;
            if lo < hi {
                f(&b[lo as usize..hi as usize])?;
            }
            base += b.len() as u64;
            i += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::null::Chunks;
    use crate::zone_rules::{Kernel, ZoneConfig, ZoneGeometry};

    fn device(zone_size: u64, zones: u64) -> EmulatedZoned<Chunks> {
        let cfg = ZoneConfig {
            size: zone_size * zones,
            zone_size,
            zone_capacity: None,
            nr_conv: 0,
            max_open: 0,
            max_active: 0,
            zone_append_max: 0,
            kernel: Kernel::V6_1,
            device: Device::NullBlk,
        };
        let geo = ZoneGeometry::new(&cfg).unwrap();
        EmulatedZoned::new(Chunks::default(), ZoneState::new(geo))
    }

    /// Appends from several threads into the same zones: each lands whole
    /// at its own position, none overlap, nothing is lost, and the write
    /// pointers add up.
    #[test]
    fn concurrent_appends_land_whole_and_distinct() {
        const BLOCK: usize = 4096;
        for threads in [2u8, 4, 8] {
            let zone = 8 << 20;
            let dev = device(zone, 2);
            let per_thread = 256usize;
            let landed = Mutex::new(Vec::new());
            std::thread::scope(|s| {
                for t in 0..threads {
                    let (dev, landed) = (&dev, &landed);
                    s.spawn(move || {
                        let data = vec![t + 1; BLOCK];
                        for k in 0..per_thread {
                            let zone_start = (k % 2) as u64 * zone;
                            let pos = dev.append(zone_start, &data).unwrap();
                            landed.lock().unwrap().push((pos, t + 1));
                        }
                    });
                }
            });
            let mut landed = landed.into_inner().unwrap();
            landed.sort();
            let total = threads as usize * per_thread;
            assert_eq!(landed.len(), total);
            let mut buf = vec![0u8; BLOCK];
            for w in landed.windows(2) {
                assert!(w[0].0 != w[1].0, "two appends landed at {}", w[0].0);
            }
            for &(pos, tag) in &landed {
                dev.read(pos, &mut buf).unwrap();
                assert!(buf.iter().all(|&b| b == tag), "block at {pos} is torn");
            }
            let zones = dev.report(0, 2).unwrap();
            let written: u64 = zones.iter().map(|z| z.wp - z.start).sum();
            assert_eq!(written, (total * BLOCK) as u64);
        }
    }

    /// Writes to different zones do not wait for each other: while one
    /// zone's lock is held, a write to another zone completes.
    #[test]
    fn writes_to_other_zones_do_not_wait() {
        let dev = device(1 << 20, 4);
        let held = dev.zone_locks[0].lock().unwrap();
        std::thread::scope(|s| {
            let h = s.spawn(|| dev.write(1 << 20, &[7u8; 512]));
            let start = std::time::Instant::now();
            while !h.is_finished() {
                assert!(start.elapsed().as_secs() < 5, "write to zone 1 blocked");
                std::thread::yield_now();
            }
            h.join().unwrap().unwrap();
        });
        drop(held);
        assert_eq!(dev.report(1 << 20, 1).unwrap()[0].wp, (1 << 20) + 512);
    }

    #[test]
    fn zone_faults_parse_and_apply() {
        let take = |o: &str, restore| take_zone_faults(&mut OptionMap::parse(o).unwrap(), restore);
        let f = take("zone_readonly=1:3,zone_offline=2,zone_restore=4", true).unwrap();
        assert_eq!(
            (f.readonly, f.offline, f.restore),
            (vec![1, 3], vec![2], vec![4])
        );
        // Without `restore`, zone_restore is left for the caller to refuse.
        let mut m = OptionMap::parse("zone_restore=1").unwrap();
        assert!(take_zone_faults(&mut m, false).unwrap().is_empty());
        assert!(m.contains("zone_restore"));
        assert!(
            take("zone_readonly=1,,2", false)
                .unwrap_err()
                .contains("':'")
        );
        assert!(take("zone_readonly=", false).is_err());
        let e = take("zone_readonly=1:2,zone_offline=2", false).unwrap_err();
        assert_eq!(
            e,
            "Zone 2 is given in both 'zone_readonly' and 'zone_offline'"
        );

        let geo = ZoneGeometry::new(&ZoneConfig {
            size: 4 << 20,
            zone_size: 1 << 20,
            zone_capacity: None,
            nr_conv: 1,
            max_open: 0,
            max_active: 0,
            zone_append_max: 0,
            kernel: Kernel::V6_1,
            device: Device::NullBlk,
        })
        .unwrap();
        let mut st = ZoneState::new(geo);
        let bad = take("zone_offline=0", false).unwrap();
        assert!(
            bad.apply(&mut st)
                .unwrap_err()
                .contains("zone 0 is conventional")
        );
        let bad = take("zone_readonly=2:4", false).unwrap();
        assert!(
            bad.apply(&mut st)
                .unwrap_err()
                .contains("zone 4 does not exist")
        );
        assert_eq!(st, ZoneState::new(geo));
        let f = take("zone_readonly=2,zone_offline=3", false).unwrap();
        assert!(f.apply(&mut st).unwrap().is_empty());
        let c = |st: &ZoneState| (1..4).map(|i| st.zone(i).cond).collect::<Vec<_>>();
        assert_eq!(
            c(&st),
            [ZoneCond::Empty, ZoneCond::ReadOnly, ZoneCond::Offline]
        );
        st.take_changes();
        // Asked again: nothing changes. Swapped: both change.
        f.apply(&mut st).unwrap();
        assert!(st.take_changes().zones.is_empty());
        let f = take("zone_readonly=3,zone_offline=2,zone_restore=1", true).unwrap();
        assert!(f.apply(&mut st).unwrap().is_empty());
        assert_eq!(
            c(&st),
            [ZoneCond::Empty, ZoneCond::Offline, ZoneCond::ReadOnly]
        );
        let f = take("zone_restore=2:3", true).unwrap();
        assert_eq!(
            f.apply(&mut st).unwrap(),
            [(2 << 20, 1 << 20), (3 << 20, 1 << 20)]
        );
        assert_eq!(c(&st), [ZoneCond::Empty; 3]);
        assert_eq!(st.zone(3).wp, 3 << 20);
    }

    #[test]
    fn unaligned_writes_widen_to_sectors() {
        let dev = device(1 << 20, 2);
        dev.write(0, &[1u8; 100]).unwrap();
        assert_eq!(dev.report(0, 1).unwrap()[0].wp, 512);
        let mut buf = [0u8; 512];
        dev.read(0, &mut buf).unwrap();
        assert!(buf[..100].iter().all(|&b| b == 1));
        assert!(buf[100..].iter().all(|&b| b == 0xff));
        // Widened to [1024, 1536): not at the write pointer, refused.
        assert!(dev.write(1100, &[2u8; 10]).is_err());
        assert_eq!(dev.report(0, 1).unwrap()[0].wp, 512);
        // Widened to [512, 1024): at the write pointer, accepted.
        dev.write(600, &[2u8; 10]).unwrap();
        assert_eq!(dev.report(0, 1).unwrap()[0].wp, 1024);
    }

    /// A vectored request is one request: cut from its start like one
    /// buffer of the same bytes (a write from a zone start past a 3 MiB
    /// capacity leaves 24 requests of 255 sectors), and an unaligned one is
    /// widened to the same sectors as the joined buffer would be.
    #[test]
    fn vectored_writes_are_one_request() {
        let cfg = ZoneConfig {
            size: 16 << 20,
            zone_size: 4 << 20,
            zone_capacity: Some(3 << 20),
            nr_conv: 0,
            max_open: 0,
            max_active: 0,
            zone_append_max: 0,
            kernel: Kernel::V6_1,
            device: Device::NullBlk,
        };
        let dev = EmulatedZoned::new(
            Chunks::default(),
            ZoneState::new(ZoneGeometry::new(&cfg).unwrap()),
        );
        let pattern = vec![1u8; 2 << 20];
        let done = std::sync::atomic::AtomicU64::new(0);
        let add = |n| {
            done.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        };
        let iov: [&[u8]; 2] = [&pattern, &pattern[..0x180000]];
        assert!(dev.writev(4 << 20, &iov, &add).is_err());
        let z = dev.report(4 << 20, 1).unwrap()[0];
        assert_eq!((z.wp - z.start) / SECTOR, 24 * 255);
        assert_eq!(z.cond, ZoneCond::ImplicitOpen);
        assert_eq!(done.into_inner(), 24 * 255 * SECTOR);

        let data: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        let one = device(1 << 20, 2);
        let many = device(1 << 20, 2);
        one.write(0, &[9u8; 1024]).unwrap();
        many.write(0, &[9u8; 1024]).unwrap();
        one.write(1100, &data).unwrap();
        let parts: Vec<&[u8]> = data.chunks(777).collect();
        many.writev(1100, &parts, &|_| {}).unwrap();
        let (mut a, mut b) = (vec![0u8; 8192], vec![0u8; 8192]);
        one.read(0, &mut a).unwrap();
        many.read(0, &mut b).unwrap();
        assert_eq!(a, b);
        assert_eq!(one.report(0, 1).unwrap(), many.report(0, 1).unwrap());
    }

    /// A store whose data writes or commits fail on demand.
    #[derive(Default)]
    struct Failing {
        data: Chunks,
        fail_write: std::sync::atomic::AtomicBool,
        fail_commit: std::sync::atomic::AtomicBool,
        commits: Mutex<Vec<Dirty>>,
    }

    impl ZoneStore for Failing {
        fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
            ZoneStore::read(&self.data, offset, buf)
        }
        fn write(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
            if self.fail_write.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
            ZoneStore::write(&self.data, offset, buf)
        }
        fn discard(&self, offset: u64, len: u64) -> io::Result<()> {
            ZoneStore::discard(&self.data, offset, len)
        }
        fn commit(&self, _state: &ZoneState, dirty: &Dirty) -> io::Result<()> {
            if self.fail_commit.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(io::Error::from_raw_os_error(libc::EIO));
            }
            self.commits.lock().unwrap().push(dirty.clone());
            Ok(())
        }
    }

    /// A write, append or zone operation whose data or commit fails
    /// changes nothing: same write pointers, conditions and cursor, and
    /// the next command commits only its own change.
    #[test]
    fn failed_store_rolls_the_command_back() {
        use std::sync::atomic::Ordering::Relaxed;
        let cfg = ZoneConfig {
            size: 4 << 20,
            zone_size: 1 << 20,
            zone_capacity: None,
            nr_conv: 0,
            max_open: 1,
            max_active: 0,
            zone_append_max: 0,
            kernel: Kernel::V6_1,
            device: Device::NullBlk,
        };
        let geo = ZoneGeometry::new(&cfg).unwrap();
        let dev = EmulatedZoned::new(Failing::default(), ZoneState::new(geo));
        dev.write(0, &[1u8; 4096]).unwrap();
        let before = dev.report(0, 4).unwrap();
        let cursor = lock(&dev.state).cursor();
        for (flag, name) in [
            (&dev.store.fail_write, "data"),
            (&dev.store.fail_commit, "commit"),
        ] {
            flag.store(true, Relaxed);
            // Would implicitly close zone 0 to open zone 1.
            let e = dev.write(1 << 20, &[2u8; 300 << 10]).unwrap_err();
            assert!(e.raw_os_error().is_some(), "{name}");
            assert!(dev.append(0, &[3u8; 512]).is_err(), "{name}");
            assert!(dev.zone_mgmt(ZoneOp::Finish, 0, 1 << 20).is_err() || name == "data");
            flag.store(false, Relaxed);
            if name == "data" {
                // Finish stores no data: it went through; take it back.
                dev.zone_mgmt(ZoneOp::Reset, 0, 1 << 20).unwrap();
                dev.write(0, &[1u8; 4096]).unwrap();
            }
            assert_eq!(dev.report(0, 4).unwrap(), before, "{name}");
            assert_eq!(lock(&dev.state).cursor(), cursor, "{name}");
        }
        dev.store.commits.lock().unwrap().clear();
        dev.write(2 << 20, &[4u8; 512]).unwrap();
        let commits = dev.store.commits.lock().unwrap().clone();
        assert_eq!(commits.len(), 1);
        assert_eq!(commits[0].zones, [0, 2], "zone 0 closed, zone 2 opened");
    }
}
