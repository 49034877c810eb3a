//! What every filter driver shares: the node forwards each request to its
//! child unchanged, after its policy has seen it; the policy may delay the
//! request (`throttle`) or fail it (`blkdebug`), and a failed request never
//! reaches the child. Filters report their child's zones as their own. A
//! vectored write is one request to the policy and to the child. A zone
//! management command the policy fails reads as the device's own failure
//! (`blkdebug` injects device errors): it carries the line a failed
//! ioctl prints (`ZoneError::ioctl_failed`).

use std::io;
use std::sync::Arc;

use super::driver::OnProgress;
use super::driver::Prealloc;
use super::zone::{Zone, ZoneInfo, ZoneOp};
use super::zone_rules::ZoneError;
use super::{BlockDriver, Role, WriteFlags};

/// A request as a filter's policy sees it (sizes in bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    Read(u64),
    /// Writes and write-zeroes.
    Write(u64),
    Discard,
    Flush,
    ZoneReport,
    ZoneMgmt,
    ZoneAppend(u64),
}

/// The behaviour of one filter driver.
pub trait FilterPolicy: Send + Sync + 'static {
    /// The driver's name in `driver=`.
    const NAME: &'static str;

    /// Sees `req` before it goes to the child; an error fails it.
    fn admit(&self, req: Request) -> io::Result<()>;
}

pub struct FilterNode<P> {
    child: Arc<dyn BlockDriver>,
    policy: P,
}

impl<P: FilterPolicy> FilterNode<P> {
    pub fn new(child: Arc<dyn BlockDriver>, policy: P) -> Self {
        FilterNode { child, policy }
    }

    #[cfg(test)]
    pub fn policy(&self) -> &P {
        &self.policy
    }
}

impl<P: FilterPolicy> BlockDriver for FilterNode<P> {
    fn driver_name(&self) -> &'static str {
        P::NAME
    }

    fn role(&self) -> Role {
        Role::Filter
    }

    fn child(&self) -> Option<&Arc<dyn BlockDriver>> {
        Some(&self.child)
    }

    fn length(&self) -> io::Result<u64> {
        self.child.length()
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.policy.admit(Request::Read(buf.len() as u64))?;
        self.child.read(offset, buf)
    }

    fn write(&self, offset: u64, buf: &[u8], flags: WriteFlags) -> io::Result<()> {
        self.policy.admit(Request::Write(buf.len() as u64))?;
        self.child.write(offset, buf, flags)
    }

    fn writev(
        &self,
        offset: u64,
        bufs: &[&[u8]],
        flags: WriteFlags,
        progress: OnProgress<'_>,
    ) -> io::Result<()> {
        let len = bufs.iter().map(|b| b.len() as u64).sum();
        self.policy.admit(Request::Write(len))?;
        self.child.writev(offset, bufs, flags, progress)
    }

    fn write_zeroes(&self, offset: u64, len: u64, flags: WriteFlags) -> io::Result<()> {
        self.policy.admit(Request::Write(len))?;
        self.child.write_zeroes(offset, len, flags)
    }

    fn discard(&self, offset: u64, len: u64) -> io::Result<()> {
        self.policy.admit(Request::Discard)?;
        self.child.discard(offset, len)
    }

    fn flush(&self) -> io::Result<()> {
        self.policy.admit(Request::Flush)?;
        self.child.flush()
    }

    fn truncate(&self, len: u64, prealloc: Prealloc) -> Result<(), String> {
        self.child.truncate(len, prealloc)
    }

    fn zone_info(&self) -> Option<ZoneInfo> {
        self.child.zone_info()
    }

    fn zone_report(&self, offset: u64, max: usize) -> io::Result<Vec<Zone>> {
        self.policy.admit(Request::ZoneReport)?;
        self.child.zone_report(offset, max)
    }

    fn zone_mgmt(&self, op: ZoneOp, offset: u64, len: u64) -> Result<(), ZoneError> {
        if self.child.zone_info().is_none() {
            // Not zoned: the child's ENOTSUP, not an event for the policy.
            return self.child.zone_mgmt(op, offset, len);
        }
        self.policy
            .admit(Request::ZoneMgmt)
            .map_err(|e| ZoneError::ioctl_failed(op, e))?;
        self.child.zone_mgmt(op, offset, len)
    }

    fn zone_append(&self, zone_start: u64, data: &[u8]) -> io::Result<u64> {
        self.policy.admit(Request::ZoneAppend(data.len() as u64))?;
        self.child.zone_append(zone_start, data)
    }
}
