//! The breakpoints and request tracking of a `blkdebug` node, as QEMU's
//! blkdebug and block layer have them: `break EVENT TAG` arms a one-shot
//! breakpoint on an event (QEMU's `BlkdebugEvent` names); the next request
//! that reaches that event at this node is suspended, as TAG, until
//! `resume TAG` (the most recently suspended request of TAG first) or
//! `remove_break TAG` (all of them). Every request through the node is
//! tracked with the byte range it covers, rounded out to the node's
//! alignment; a request that must read-modify-write is serialising, and a
//! request waits while a tracked one overlapping it is serialising (or it
//! is serialising itself) unless that one is itself waiting, QEMU's rule
//! (`bdrv_find_conflicting_request`), so a suspended request holds back the
//! overlapping requests that come after it. A request suspended or waiting
//! is "parked"; whoever runs requests in other threads counts them to know
//! when nothing can move any more.

use std::cell::Cell;
use std::io;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

/// QEMU 10.0's `BlkdebugEvent` names, the events `break` accepts. The
/// blkdebug node reaches these: `pwritev_rmw_head`, `pwritev_rmw_after_head`,
/// `pwritev_rmw_tail`, `pwritev_rmw_after_tail` (a write padded to the
/// alignment), `pwritev`, `pwritev_zero` and `pwritev_done` (every write),
/// `flush_to_os` and `flush_to_disk` (a flush); the others (qcow2's) are
/// accepted and never reached.
pub const EVENTS: &[&str] = &[
    "l1_update",
    "l1_grow_alloc_table",
    "l1_grow_write_table",
    "l1_grow_activate_table",
    "l2_load",
    "l2_update",
    "l2_update_compressed",
    "l2_alloc_cow_read",
    "l2_alloc_write",
    "read_aio",
    "read_backing_aio",
    "read_compressed",
    "write_aio",
    "write_compressed",
    "vmstate_load",
    "vmstate_save",
    "cow_read",
    "cow_write",
    "reftable_load",
    "reftable_grow",
    "reftable_update",
    "refblock_load",
    "refblock_update",
    "refblock_update_part",
    "refblock_alloc",
    "refblock_alloc_hookup",
    "refblock_alloc_write",
    "refblock_alloc_write_blocks",
    "refblock_alloc_write_table",
    "refblock_alloc_switch_table",
    "cluster_alloc",
    "cluster_alloc_bytes",
    "cluster_free",
    "flush_to_os",
    "flush_to_disk",
    "pwritev_rmw_head",
    "pwritev_rmw_after_head",
    "pwritev_rmw_tail",
    "pwritev_rmw_after_tail",
    "pwritev",
    "pwritev_zero",
    "pwritev_done",
    "empty_image_prepare",
    "l1_shrink_write_table",
    "l1_shrink_free_l2_clusters",
    "cor_write",
    "cluster_alloc_space",
    "none",
];

/// A request at the node: its id and the range it covers.
struct Tracked {
    id: u64,
    start: u64,
    end: u64,
    serialising: bool,
    waiting: bool,
}

/// A request suspended at a breakpoint.
struct Suspension {
    req: u64,
    tag: String,
}

#[derive(Default)]
struct State {
    /// Armed breakpoints, newest first: (event, tag).
    rules: Vec<(&'static str, String)>,
    /// Newest first.
    suspended: Vec<Suspension>,
    /// Suspensions not yet taken by [`Breakpoints::take_suspensions`].
    log: Vec<(Instant, String)>,
    tracked: Vec<Tracked>,
    next_id: u64,
}

impl State {
    fn new_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn get(&mut self, id: u64) -> &mut Tracked {
        self.tracked
            .iter_mut()
            .find(|t| t.id == id)
            .expect("a tracked request is tracked until its guard drops")
    }

    /// The request `id` must wait for, QEMU's conflicting request.
    fn conflict(&self, id: u64) -> bool {
        let Some(me) = self.tracked.iter().find(|t| t.id == id) else {
            return false;
        };
        self.tracked.iter().any(|r| {
            r.id != id
                && (r.serialising || me.serialising)
                && r.start < me.end
                && me.start < r.end
                && !r.waiting
        })
    }
}

/// A blkdebug node's breakpoints and tracked requests.
#[derive(Default)]
pub struct Breakpoints {
    state: Mutex<State>,
    changed: Condvar,
}

impl Breakpoints {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere leaves the state whole (each change is one
        // step), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'a>(&self, g: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.changed.wait(g).unwrap_or_else(|e| e.into_inner())
    }

    /// Arms a breakpoint at `event`; ENOENT for a name that is not one of
    /// [`EVENTS`].
    pub fn set(&self, event: &str, tag: &str) -> io::Result<()> {
        let Some(&ev) = EVENTS.iter().find(|&&e| e == event) else {
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        };
        self.lock().rules.insert(0, (ev, tag.to_string()));
        Ok(())
    }

    /// Disarms every breakpoint of `tag` and resumes every request
    /// suspended as `tag`; returns how many were resumed, and ENOENT unless
    /// an armed breakpoint was removed (QEMU's answer, whatever it resumed).
    pub fn remove(&self, tag: &str) -> (usize, io::Result<()>) {
        let mut s = self.lock();
        let before = s.rules.len();
        s.rules.retain(|(_, t)| t != tag);
        let removed = s.rules.len() != before;
        let before = s.suspended.len();
        s.suspended.retain(|r| r.tag != tag);
        let resumed = before - s.suspended.len();
        drop(s);
        self.changed.notify_all();
        let r = if removed {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(libc::ENOENT))
        };
        (resumed, r)
    }

    /// Resumes the most recently suspended request of `tag`; ENOENT if none.
    pub fn resume(&self, tag: &str) -> io::Result<()> {
        let mut s = self.lock();
        let Some(i) = s.suspended.iter().position(|r| r.tag == tag) else {
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        };
        s.suspended.remove(i);
        drop(s);
        self.changed.notify_all();
        Ok(())
    }

    /// Disarms every breakpoint.
    pub fn disarm_all(&self) {
        self.lock().rules.clear();
    }

    /// Resumes every suspended request; the tags resumed, newest first.
    pub fn resume_all(&self) -> Vec<String> {
        let mut s = self.lock();
        let tags = s.suspended.drain(..).map(|r| r.tag).collect();
        drop(s);
        self.changed.notify_all();
        tags
    }

    pub fn is_suspended(&self, tag: &str) -> bool {
        self.lock().suspended.iter().any(|r| r.tag == tag)
    }

    /// Requests suspended, or waiting for another one and not yet free to
    /// go: worked out from the state each time, so a request resumed or
    /// freed counts as running at once, before its thread wakes.
    pub fn parked(&self) -> usize {
        let s = self.lock();
        let mut ids: Vec<u64> = s.suspended.iter().map(|r| r.req).collect();
        ids.sort_unstable();
        ids.dedup();
        let waiting = s
            .tracked
            .iter()
            .filter(|t| t.waiting && s.conflict(t.id))
            .count();
        ids.len() + waiting
    }

    /// The tags requests were suspended as since the last call, with when.
    pub fn take_suspensions(&self) -> Vec<(Instant, String)> {
        std::mem::take(&mut self.lock().log)
    }

    /// Tracks a request covering `[start, end)` until the guard drops.
    pub(crate) fn begin(&self, start: u64, end: u64) -> ReqGuard<'_> {
        let mut s = self.lock();
        let id = s.new_id();
        s.tracked.push(Tracked {
            id,
            start,
            end,
            serialising: false,
            waiting: false,
        });
        ReqGuard { bp: self, id }
    }

    /// Reaches `event` for a request that is not tracked (a flush).
    pub(crate) fn event(&self, event: &str) {
        let id = self.lock().new_id();
        self.reach(id, event);
    }

    /// Request `id` reaches `event`: suspended there once per armed
    /// breakpoint, each breakpoint used up.
    fn reach(&self, id: u64, event: &str) {
        let mut s = self.lock();
        if !s.rules.iter().any(|(e, _)| *e == event) {
            return;
        }
        let now = Instant::now();
        let mut hit = Vec::new();
        s.rules.retain(|(e, tag)| {
            if *e == event {
                hit.push(tag.clone());
                false
            } else {
                true
            }
        });
        for tag in hit {
            s.log.push((now, tag.clone()));
            s.suspended.insert(0, Suspension { req: id, tag });
        }
        while s.suspended.iter().any(|r| r.req == id) {
            s = self.wait(s);
        }
    }

    /// Waits while request `id` conflicts with another.
    fn wait_serialising(&self, id: u64) {
        let mut s = self.lock();
        while s.conflict(id) {
            s.get(id).waiting = true;
            // Others may now pass this one (it waits).
            self.changed.notify_all();
            s = self.wait(s);
            s.get(id).waiting = false;
        }
    }
}

/// A tracked request; dropping it ends the request and wakes those
/// waiting for it.
pub(crate) struct ReqGuard<'a> {
    bp: &'a Breakpoints,
    id: u64,
}

impl ReqGuard<'_> {
    /// Makes the request serialising over its range rounded out to
    /// `align`, then waits for the requests it conflicts with.
    pub(crate) fn serialise(&self, align: u64) {
        {
            let mut s = self.bp.lock();
            let t = s.get(self.id);
            t.serialising = true;
            t.start -= t.start % align;
            t.end = t.end.div_ceil(align).saturating_mul(align);
        }
        self.bp.wait_serialising(self.id);
    }

    /// Waits for the serialising requests this one overlaps.
    pub(crate) fn wait_serialising(&self) {
        self.bp.wait_serialising(self.id);
    }

    pub(crate) fn event(&self, event: &str) {
        debug_assert!(EVENTS.contains(&event));
        self.bp.reach(self.id, event);
    }
}

thread_local! {
    /// When the last tracked request of this thread ended.
    static LAST_END: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// When the last request this thread made through a blkdebug node ended
/// there (before any request waiting for it was woken); cleared.
pub fn take_request_end() -> Option<Instant> {
    LAST_END.with(|c| c.take())
}

impl Drop for ReqGuard<'_> {
    fn drop(&mut self) {
        let mut s = self.bp.lock();
        s.tracked.retain(|t| t.id != self.id);
        LAST_END.with(|c| c.set(Some(Instant::now())));
        drop(s);
        self.bp.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    fn settle(bp: &Breakpoints, parked: usize) {
        for _ in 0..2000 {
            if bp.parked() == parked {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        panic!("never {parked} parked");
    }

    #[test]
    fn bad_names_and_tags() {
        let bp = Breakpoints::default();
        assert_eq!(bp.set("nosuch", "A").unwrap_err().raw_os_error(), Some(2));
        assert_eq!(bp.resume("A").unwrap_err().raw_os_error(), Some(2));
        assert_eq!(bp.remove("A").1.unwrap_err().raw_os_error(), Some(2));
        bp.set("write_aio", "A").unwrap();
        assert_eq!(bp.remove("A").0, 0);
        assert!(bp.remove("A").1.is_err());
    }

    #[test]
    fn suspend_resume_and_serialise() {
        let bp = Arc::new(Breakpoints::default());
        bp.set("pwritev", "A").unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let (b, o) = (bp.clone(), order.clone());
        let first = std::thread::spawn(move || {
            let g = b.begin(0, 4096);
            g.serialise(4096);
            g.event("pwritev");
            o.lock().unwrap().push(1);
        });
        settle(&bp, 1);
        assert!(bp.is_suspended("A"));
        assert_eq!(bp.take_suspensions().len(), 1);
        // An overlapping request waits behind the suspended one.
        let (b, o) = (bp.clone(), order.clone());
        let second = std::thread::spawn(move || {
            let g = b.begin(512, 1024);
            g.wait_serialising();
            o.lock().unwrap().push(2);
        });
        settle(&bp, 2);
        // One elsewhere does not.
        let g = bp.begin(8192, 9000);
        g.wait_serialising();
        drop(g);
        bp.resume("A").unwrap();
        first.join().unwrap();
        second.join().unwrap();
        assert_eq!(*order.lock().unwrap(), [1, 2]);
        assert_eq!(bp.parked(), 0);
        assert!(!bp.is_suspended("A"));
    }
}
