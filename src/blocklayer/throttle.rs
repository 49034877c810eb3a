//! `throttle`: a filter that limits throughput with a blocking leaky bucket,
//! like QEMU's throttle groups: `bps-total=` bytes and `iops-total=`
//! requests per second over reads and writes together. A bucket lets a
//! request through while its level is at most a tenth of a second's worth
//! (the burst QEMU allows), then drains at the configured rate.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::open::open_child;
use super::zone::{Zone, ZoneInfo, ZoneOp};
use super::{BlockDriver, OpenFlags, OptionMap, Role, WriteFlags};

/// One limit: `rate` units per second, `level` units owed.
#[derive(Debug)]
struct Bucket {
    rate: f64,
    level: f64,
}

impl Bucket {
    fn new(rate: u64) -> Self {
        Bucket {
            rate: rate as f64,
            level: 0.0,
        }
    }

    fn leak(&mut self, secs: f64) {
        self.level = (self.level - secs * self.rate).max(0.0);
    }

    /// How long until the bucket accepts a request.
    fn wait(&self) -> Duration {
        let burst = self.rate / 10.0;
        if self.level <= burst {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((self.level - burst) / self.rate)
        }
    }
}

struct State {
    bps: Option<Bucket>,
    iops: Option<Bucket>,
    last: Instant,
}

pub struct ThrottleNode {
    child: Arc<dyn BlockDriver>,
    state: Mutex<State>,
}

/// `driver=throttle[,bps-total=N][,iops-total=N],file.*=...`.
pub fn open(opts: &mut OptionMap, flags: &OpenFlags) -> Result<Arc<dyn BlockDriver>, String> {
    let bps = opts.take_size("bps-total")?;
    let iops = opts.take_size("iops-total")?;
    if bps == Some(0) || iops == Some(0) {
        return Err("throttle limits must be greater than zero".into());
    }
    let child = open_child(opts, "file", flags)?;
    Ok(Arc::new(ThrottleNode {
        child,
        state: Mutex::new(State {
            bps: bps.map(Bucket::new),
            iops: iops.map(Bucket::new),
            last: Instant::now(),
        }),
    }))
}

impl ThrottleNode {
    /// Blocks until the buckets admit a request of `bytes`, then charges it.
    fn admit(&self, bytes: u64) {
        loop {
            let wait = {
                let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
                let s = &mut *guard;
                let now = Instant::now();
                let secs = now.duration_since(s.last).as_secs_f64();
                s.last = now;
                let mut wait = Duration::ZERO;
                for b in [&mut s.bps, &mut s.iops].into_iter().flatten() {
                    b.leak(secs);
                    wait = wait.max(b.wait());
                }
                if wait.is_zero() {
                    if let Some(b) = &mut s.bps {
                        b.level += bytes as f64;
                    }
                    if let Some(b) = &mut s.iops {
                        b.level += 1.0;
                    }
                    return;
                }
                wait
            };
            std::thread::sleep(wait);
        }
    }
}

impl BlockDriver for ThrottleNode {
    fn driver_name(&self) -> &'static str {
        "throttle"
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
        self.admit(buf.len() as u64);
        self.child.read(offset, buf)
    }

    fn write(&self, offset: u64, buf: &[u8], flags: WriteFlags) -> io::Result<()> {
        self.admit(buf.len() as u64);
        self.child.write(offset, buf, flags)
    }

    fn write_zeroes(&self, offset: u64, len: u64, flags: WriteFlags) -> io::Result<()> {
        self.admit(len);
        self.child.write_zeroes(offset, len, flags)
    }

    fn discard(&self, offset: u64, len: u64) -> io::Result<()> {
        self.child.discard(offset, len)
    }

    fn flush(&self) -> io::Result<()> {
        self.child.flush()
    }

    fn zone_info(&self) -> Option<ZoneInfo> {
        self.child.zone_info()
    }

    fn zone_report(&self, offset: u64, max: usize) -> io::Result<Vec<Zone>> {
        self.child.zone_report(offset, max)
    }

    fn zone_mgmt(&self, op: ZoneOp, offset: u64, len: u64) -> io::Result<()> {
        self.child.zone_mgmt(op, offset, len)
    }

    /// Appends count against the limits like writes.
    fn zone_append(&self, zone_start: u64, data: &[u8]) -> io::Result<u64> {
        self.admit(data.len() as u64);
        self.child.zone_append(zone_start, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocklayer::null::NullNode;

    #[test]
    fn bandwidth_is_limited() {
        let node = ThrottleNode {
            child: Arc::new(NullNode::new(1 << 20)),
            state: Mutex::new(State {
                bps: Some(Bucket::new(1 << 20)),
                iops: None,
                last: Instant::now(),
            }),
        };
        let buf = vec![0u8; 64 * 1024];
        let start = Instant::now();
        // 640 KiB at 1 MiB/s with a 0.1 s burst: about half a second.
        for i in 0..10 {
            node.write(i * 65536, &buf, WriteFlags::default()).unwrap();
        }
        let t = start.elapsed().as_secs_f64();
        assert!(t > 0.4 && t < 1.5, "took {t} s");
    }

    #[test]
    fn iops_are_limited() {
        let node = ThrottleNode {
            child: Arc::new(NullNode::new(1 << 20)),
            state: Mutex::new(State {
                bps: None,
                iops: Some(Bucket::new(100)),
                last: Instant::now(),
            }),
        };
        let mut buf = [0u8; 512];
        let start = Instant::now();
        for _ in 0..40 {
            node.read(0, &mut buf).unwrap();
        }
        let t = start.elapsed().as_secs_f64();
        // 40 requests at 100/s, 10 of them free as burst: about 0.3 s.
        assert!(t > 0.2 && t < 1.0, "took {t} s");
    }
}
