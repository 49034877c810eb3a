//! `blkdebug`: an error-injection filter, a simpler QEMU blkdebug. It
//! forwards every request to its child (zone operations included, as
//! `throttle` does) except those its rules fail; a failed request never
//! reaches the child, so data and zones are left as they were.
//!
//! Options: `driver=blkdebug,file.driver=...` plus rules numbered from 0
//! without gaps, each a group of dotted keys (QEMU spells its own
//! `inject-error.N.*`):
//!
//! | key | meaning |
//! |---|---|
//! | `inject.N.event` | required: `read`, `write` (write-zeroes too), `flush`, `discard`, `zone` (any zone report, management command or append) or `append` (zone appends only) |
//! | `inject.N.errno` | the error: a number or a name (`EIO`, `ENOSPC`, `ETOOMANYREFS`, any Linux errno name, any case); default 5, EIO |
//! | `inject.N.after` | let the first N matching events pass; default 0 |
//! | `inject.N.once` | `on`: fail only the first matching event after those; `off` (default): fail every one |
//!
//! For example `inject.0.event=write,inject.0.after=2,inject.0.once=on`
//! fails the third write with EIO and lets every other through. An event
//! is one request reaching the node, and a read/write command is one
//! request whatever its size (a `write` or `writev` is one vectored
//! request; only a read longer than 16 MiB is read in 1 MiB requests,
//! each one an event). Asking for `zone_info` is not an event. A request
//! this node passes on counts even when the device below refuses it (a
//! write at the wrong place in a zone is an event, then fails in the zoned
//! node). A zone management command this node fails fails as the device's
//! ioctl would, with the `ioctl BLKxxxZONE failed -ERRNO` line QEMU's
//! host_device prints.
//!
//! Each rule counts the events it matches, on this node, from open, atomically
//! (requests from several threads each get their own number); every
//! matching rule counts an event, even one another rule fails. When several
//! rules fail an event, the lowest-numbered gives the error. A rule after a
//! gap in the numbering, or an unknown key, is refused as an unknown
//! option.
//!
//! `align=N` is QEMU's request alignment of the node: a write not aligned
//! to it is read-modify-written as QEMU's block layer pads it (the padding
//! read is a `read` event for the rules), serialised against the
//! overlapping requests. The node also has QEMU's breakpoints and request
//! tracking ([`Breakpoints`]): the `pwritev*` and `flush_to_*` events of
//! QEMU's block layer are reached here, where a breakpoint may suspend the
//! request.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use nix::errno::Errno;

use super::breakpoints::{Breakpoints, ReqGuard};
use super::driver::{OnProgress, Prealloc};
use super::filter::{FilterNode, FilterPolicy, Request};
use super::open::open_child;
use super::zone::{Zone, ZoneInfo, ZoneOp};
use super::zone_rules::ZoneError;
use super::{BlockDriver, NodeInfo, OpenFlags, OptionMap, Role, WriteFlags};

/// What a rule matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Event {
    Read,
    Write,
    Flush,
    Discard,
    Zone,
    Append,
}

impl Event {
    const NAMES: &[(&str, Event)] = &[
        ("read", Event::Read),
        ("write", Event::Write),
        ("flush", Event::Flush),
        ("discard", Event::Discard),
        ("zone", Event::Zone),
        ("append", Event::Append),
    ];

    fn parse(v: &str) -> Option<Event> {
        Self::NAMES.iter().find(|(n, _)| *n == v).map(|&(_, e)| e)
    }
}

/// One `inject.N.*` rule with its event counter.
#[derive(Debug)]
struct Rule {
    event: Event,
    errno: i32,
    after: u64,
    once: bool,
    seen: AtomicU64,
}

impl Rule {
    /// Counts one matching event; true if this rule fails it.
    fn hit(&self) -> bool {
        let n = self.seen.fetch_add(1, Ordering::Relaxed);
        n >= self.after && (!self.once || n == self.after)
    }
}

/// The policy of a `blkdebug` node: its rules.
pub struct Blkdebug {
    rules: Vec<Rule>,
}

/// The keys of a rule after `inject.N.`.
const RULE_KEYS: &[&str] = &["event", "errno", "after", "once"];

/// An errno from a number (1 to 4095) or a name (`EIO`, `enospc`).
fn parse_errno(v: &str) -> Option<i32> {
    if let Ok(n) = v.parse::<i32>() {
        return (1..4096).contains(&n).then_some(n);
    }
    let name = v.to_ascii_uppercase();
    // Names nix spells otherwise.
    let alias = match name.as_str() {
        "ENOTSUP" => Some(Errno::ENOTSUP),
        "EWOULDBLOCK" => Some(Errno::EWOULDBLOCK),
        "EDEADLOCK" => Some(Errno::EDEADLOCK),
        _ => None,
    };
    if let Some(e) = alias {
        return Some(e as i32);
    }
    (1..4096).find(|&n| format!("{:?}", Errno::from_raw(n)) == name)
}

/// Takes rule `i`'s keys; `None` when it has none.
fn take_rule(opts: &mut OptionMap, i: usize) -> Result<Option<Rule>, String> {
    let key = |k: &str| format!("inject.{i}.{k}");
    if !RULE_KEYS.iter().any(|k| opts.contains(&key(k))) {
        return Ok(None);
    }
    let event = match opts.take(&key("event")) {
        None => return Err(format!("Rule 'inject.{i}' needs '{}'", key("event"))),
        Some(v) => Event::parse(&v).ok_or_else(|| {
            format!(
                "Parameter '{}' expects read, write, flush, discard, zone or append, got '{v}'",
                key("event")
            )
        })?,
    };
    let errno = match opts.take(&key("errno")) {
        None => libc::EIO,
        Some(v) => parse_errno(&v).ok_or_else(|| {
            format!(
                "Parameter '{}' expects an errno number or name (EIO, ENOSPC, ...), got '{v}'",
                key("errno")
            )
        })?,
    };
    let after = match opts.take(&key("after")) {
        None => 0,
        Some(v) => v.parse::<u64>().map_err(|_| {
            format!(
                "Parameter '{}' expects a whole number, got '{v}'",
                key("after")
            )
        })?,
    };
    let once = opts.take_bool(&key("once"))?.unwrap_or(false);
    Ok(Some(Rule {
        event,
        errno,
        after,
        once,
        seen: AtomicU64::new(0),
    }))
}

/// `driver=blkdebug[,inject.N.event=E[,inject.N.errno=..][,inject.N.after=..]
/// [,inject.N.once=on]]...,file.*=...`.
pub fn open(opts: &mut OptionMap, flags: &OpenFlags) -> Result<Arc<dyn BlockDriver>, String> {
    let mut rules = Vec::new();
    while let Some(r) = take_rule(opts, rules.len())? {
        rules.push(r);
    }
    // QEMU's request alignment: an unaligned write is read-modify-written
    // (`BlkdebugNode::writev`).
    let align = opts.take_size("align")?.unwrap_or(0);
    if align != 0 && (align >= i32::MAX as u64 || !align.is_power_of_two()) {
        return Err(format!("Cannot meet constraints with align {align}"));
    }
    // QEMU names the child `image` (and a `blkdebug::FILE` name gives it as
    // `x-image`); zio's own tests call it `file`.
    if let Some(image) = opts.take("x-image") {
        opts.set("image.filename", image);
    }
    let name = if opts.has_child("image") {
        "image"
    } else {
        "file"
    };
    let child = open_child(opts, name, flags)?;
    Ok(Arc::new(BlkdebugNode {
        inner: FilterNode::new(child, Blkdebug { rules }),
        align: align.max(1),
        bp: Breakpoints::default(),
    }))
}

/// The blkdebug node: the rules (a [`FilterNode`] with the [`Blkdebug`]
/// policy) under QEMU's block-layer handling of the node's requests: each
/// is tracked, a write not aligned to `align` is padded to it by reading
/// the blocks it starts and ends in (read-modify-write, serialising), and
/// the events on the way may stop it at a breakpoint.
struct BlkdebugNode {
    inner: FilterNode<Blkdebug>,
    align: u64,
    bp: Breakpoints,
}

impl BlkdebugNode {
    /// `[offset, offset + len)` rounded out to the alignment.
    fn aligned(&self, offset: u64, len: u64) -> (u64, u64) {
        let a = self.align;
        let end = offset.saturating_add(len);
        (offset - offset % a, end.div_ceil(a).saturating_mul(a))
    }

    /// QEMU's padding of an unaligned write (`bdrv_init_padding`): the
    /// bytes before `offset` in its first block and after its end in its
    /// last, read from the child (each read an event of the rules), with
    /// the `pwritev_rmw_*` events around the reads (one read when both fit
    /// in one or two blocks together, QEMU's merged read). The tail stops
    /// at the device's end.
    fn pad(&self, req: &ReqGuard, offset: u64, len: u64) -> io::Result<(Vec<u8>, Vec<u8>)> {
        let a = self.align;
        let head = offset % a;
        let end = offset + len;
        let size = self.inner.length()?;
        let tail = ((a - end % a) % a).min(size.saturating_sub(end));
        let total = head + len + tail;
        let buf_len = if total > a && head > 0 && tail > 0 {
            2 * a
        } else {
            a
        };
        let merge = total == buf_len;
        let (mut head_buf, mut tail_buf) = (Vec::new(), Vec::new());
        if head > 0 || merge {
            let n = if merge { total } else { head };
            let mut buf = vec![0u8; n as usize];
            if head > 0 {
                req.event("pwritev_rmw_head");
            }
            if merge && tail > 0 {
                req.event("pwritev_rmw_tail");
            }
            self.inner.read(offset - head, &mut buf)?;
            if head > 0 {
                req.event("pwritev_rmw_after_head");
            }
            if merge && tail > 0 {
                req.event("pwritev_rmw_after_tail");
            }
            head_buf = buf[..head as usize].to_vec();
            if merge {
                tail_buf = buf[(head + len) as usize..].to_vec();
                return Ok((head_buf, tail_buf));
            }
        }
        if tail > 0 {
            let mut buf = vec![0u8; tail as usize];
            req.event("pwritev_rmw_tail");
            self.inner.read(end, &mut buf)?;
            req.event("pwritev_rmw_after_tail");
            tail_buf = buf;
        }
        Ok((head_buf, tail_buf))
    }
}

impl BlockDriver for BlkdebugNode {
    fn driver_name(&self) -> &'static str {
        Blkdebug::NAME
    }

    fn role(&self) -> Role {
        Role::Filter
    }

    fn child(&self) -> Option<&Arc<dyn BlockDriver>> {
        self.inner.child()
    }

    fn breakpoints(&self) -> Option<&Breakpoints> {
        Some(&self.bp)
    }

    fn length(&self) -> io::Result<u64> {
        self.inner.length()
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let (start, end) = self.aligned(offset, buf.len() as u64);
        let req = self.bp.begin(start, end);
        req.wait_serialising();
        self.inner.read(offset, buf)
    }

    fn write(&self, offset: u64, buf: &[u8], flags: WriteFlags) -> io::Result<()> {
        self.writev(offset, &[buf], flags, &|_| {})
    }

    /// QEMU's `bdrv_co_pwritev_part` on this node: padded to the alignment
    /// when unaligned (serialising), then `pwritev`, the write, and
    /// `pwritev_done`.
    fn writev(
        &self,
        offset: u64,
        bufs: &[&[u8]],
        flags: WriteFlags,
        progress: OnProgress<'_>,
    ) -> io::Result<()> {
        let len: u64 = bufs.iter().map(|b| b.len() as u64).sum();
        let (start, end) = self.aligned(offset, len);
        let req = self.bp.begin(start, end);
        let padded = len > 0 && (start != offset || end != offset + len);
        let (head, tail) = if padded {
            req.serialise(self.align);
            self.pad(&req, offset, len)?
        } else {
            (Vec::new(), Vec::new())
        };
        let mut iov: Vec<&[u8]> = Vec::with_capacity(bufs.len() + 2);
        if !head.is_empty() {
            iov.push(&head);
        }
        iov.extend_from_slice(bufs);
        if !tail.is_empty() {
            iov.push(&tail);
        }
        req.wait_serialising();
        req.event("pwritev");
        let r = self
            .inner
            .writev(offset - head.len() as u64, &iov, flags, progress);
        req.event("pwritev_done");
        r
    }

    /// Not padded (the child writes the zeros where asked); `pwritev_zero`
    /// and `pwritev_done` around it.
    fn write_zeroes(&self, offset: u64, len: u64, flags: WriteFlags) -> io::Result<()> {
        let (start, end) = self.aligned(offset, len);
        let req = self.bp.begin(start, end);
        req.wait_serialising();
        req.event("pwritev_zero");
        let r = self.inner.write_zeroes(offset, len, flags);
        req.event("pwritev_done");
        r
    }

    fn discard(&self, offset: u64, len: u64) -> io::Result<()> {
        let (start, end) = self.aligned(offset, len);
        let req = self.bp.begin(start, end);
        req.wait_serialising();
        self.inner.discard(offset, len)
    }

    /// `flush_to_os` and `flush_to_disk`, as QEMU's parent flushing this
    /// node reaches them, then the flush.
    fn flush(&self) -> io::Result<()> {
        self.bp.event("flush_to_os");
        self.bp.event("flush_to_disk");
        self.inner.flush()
    }

    fn truncate(&self, len: u64, prealloc: Prealloc) -> Result<(), String> {
        self.inner.truncate(len, prealloc)
    }

    fn zone_info(&self) -> Option<ZoneInfo> {
        self.inner.zone_info()
    }

    fn zone_report(&self, offset: u64, max: usize) -> io::Result<Vec<Zone>> {
        self.inner.zone_report(offset, max)
    }

    fn zone_mgmt(&self, op: ZoneOp, offset: u64, len: u64) -> Result<(), ZoneError> {
        self.inner.zone_mgmt(op, offset, len)
    }

    fn zone_append(&self, zone_start: u64, data: &[u8]) -> io::Result<u64> {
        self.inner.zone_append(zone_start, data)
    }

    fn info(&self) -> NodeInfo {
        self.inner.info()
    }
}

impl Blkdebug {
    /// Counts a request that is every event in `kinds` against the rules;
    /// the error of the first rule that fails it.
    fn check(&self, kinds: &[Event]) -> io::Result<()> {
        let mut fail = None;
        for r in self.rules.iter().filter(|r| kinds.contains(&r.event)) {
            if r.hit() && fail.is_none() {
                fail = Some(r.errno);
            }
        }
        match fail {
            Some(e) => Err(io::Error::from_raw_os_error(e)),
            None => Ok(()),
        }
    }
}

impl FilterPolicy for Blkdebug {
    const NAME: &'static str = "blkdebug";

    fn admit(&self, req: Request) -> io::Result<()> {
        match req {
            Request::Read(_) => self.check(&[Event::Read]),
            Request::Write(_) => self.check(&[Event::Write]),
            Request::Discard => self.check(&[Event::Discard]),
            Request::Flush => self.check(&[Event::Flush]),
            Request::ZoneReport | Request::ZoneMgmt => self.check(&[Event::Zone]),
            Request::ZoneAppend(_) => self.check(&[Event::Zone, Event::Append]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WriteFlags;
    use crate::null::NullNode;

    fn node(opts: &str) -> Result<Arc<dyn BlockDriver>, String> {
        let mut m = OptionMap::parse(opts).unwrap();
        let n = open(&mut m, &OpenFlags::default())?;
        m.finish("filter", "blkdebug")?;
        Ok(n)
    }

    fn errno_of<T>(r: io::Result<T>) -> Option<i32> {
        r.err().and_then(|e| e.raw_os_error())
    }

    #[test]
    fn after_and_once() {
        let n = node("inject.0.event=write,inject.0.after=2,inject.0.once=on,file.driver=null")
            .unwrap();
        let w = |n: &Arc<dyn BlockDriver>| errno_of(n.write(0, &[1; 512], WriteFlags::default()));
        assert_eq!(
            (0..5).map(|_| w(&n)).collect::<Vec<_>>(),
            [None, None, Some(libc::EIO), None, None]
        );
        let n = node("inject.0.event=read,inject.0.errno=ENOSPC,inject.0.after=1,file.driver=null")
            .unwrap();
        let mut buf = [0u8; 512];
        assert_eq!(errno_of(n.read(0, &mut buf)), None);
        assert_eq!(errno_of(n.read(0, &mut buf)), Some(libc::ENOSPC));
        assert_eq!(errno_of(n.read(0, &mut buf)), Some(libc::ENOSPC));
        // Writes are not reads.
        assert_eq!(w(&n), None);
    }

    #[test]
    fn several_rules_count_separately_lowest_wins() {
        let n = node(
            "inject.0.event=zone,inject.0.errno=28,inject.0.after=1,\
             inject.1.event=append,inject.1.errno=etoomanyrefs,file.driver=null,file.zoned=on,file.size=64M,file.zone_size=4M",
        )
        .unwrap();
        // The first append: zone rule lets it pass, append rule fails it.
        assert_eq!(
            errno_of(n.zone_append(0, &[0; 512])),
            Some(libc::ETOOMANYREFS)
        );
        // The second: both fail it; rule 0 wins.
        assert_eq!(errno_of(n.zone_append(0, &[0; 512])), Some(libc::ENOSPC));
        assert_eq!(errno_of(n.zone_report(0, 1)), Some(libc::ENOSPC));
        assert!(n.zone_info().is_some());
        assert_eq!(n.length().unwrap(), 64 << 20);
    }

    #[test]
    fn counting_is_thread_safe() {
        let n = FilterNode::new(
            Arc::new(NullNode::new(1 << 20)),
            Blkdebug {
                rules: vec![Rule {
                    event: Event::Flush,
                    errno: libc::EIO,
                    after: 100,
                    once: true,
                    seen: AtomicU64::new(0),
                }],
            },
        );
        let failed = AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..50 {
                        if n.flush().is_err() {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(failed.into_inner(), 1);
        assert_eq!(n.policy().rules[0].seen.load(Ordering::Relaxed), 400);
    }

    #[test]
    fn bad_options() {
        let err = |o: &str| node(o).err().unwrap();
        assert!(err("inject.0.errno=5,file.driver=null").contains("needs 'inject.0.event'"));
        assert!(err("inject.0.event=bogus,file.driver=null").contains("'inject.0.event'"));
        assert!(
            err("inject.0.event=read,inject.0.errno=EBOGUS,file.driver=null").contains("errno")
        );
        assert!(err("inject.0.event=read,inject.0.errno=0,file.driver=null").contains("errno"));
        assert!(err("inject.0.event=read,inject.0.after=-1,file.driver=null").contains("after"));
        assert!(err("inject.0.event=read,inject.0.once=maybe,file.driver=null").contains("once"));
        assert_eq!(
            err("inject.0.event=read,inject.2.event=read,file.driver=null"),
            "Block filter 'blkdebug' does not support the option 'inject.2.event'"
        );
        assert_eq!(
            err("inject.0.event=read,inject.0.bogus=1,file.driver=null"),
            "Block filter 'blkdebug' does not support the option 'inject.0.bogus'"
        );
        assert_eq!(parse_errno("EIO"), Some(5));
        assert_eq!(parse_errno("enospc"), Some(libc::ENOSPC));
        assert_eq!(parse_errno("ENOTSUP"), Some(libc::EOPNOTSUPP));
        assert_eq!(parse_errno("ETOOMANYREFS"), Some(libc::ETOOMANYREFS));
        // No rules: a passthrough.
        let n = node("file.driver=null").unwrap();
        n.flush().unwrap();
    }
}
