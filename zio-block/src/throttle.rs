//! `throttle`: a filter that limits throughput with a blocking leaky bucket,
//! like QEMU's throttle groups: `bps-total=` bytes and `iops-total=`
//! requests per second over reads and writes together. A bucket lets a
//! request through while its level is at most a tenth of a second's worth
//! (the burst QEMU allows), then drains at the configured rate. A request
//! larger than the burst pays for its bytes before it passes (see
//! `Throttle::wait_for`); it still reaches the child as one request.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::filter::{FilterNode, FilterPolicy, Request};
use super::open::open_child;
use super::{BlockDriver, OpenFlags, OptionMap};

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

/// The policy of a `throttle` node: its buckets.
pub struct Throttle {
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
    Ok(Arc::new(FilterNode::new(child, Throttle::new(bps, iops))))
}

impl Throttle {
    fn new(bps: Option<u64>, iops: Option<u64>) -> Self {
        Throttle {
            state: Mutex::new(State {
                bps: bps.map(Bucket::new),
                iops: iops.map(Bucket::new),
                last: Instant::now(),
            }),
        }
    }

    /// Blocks until the buckets admit a request of `bytes`, then charges
    /// it. A request larger than the burst is charged in burst-sized
    /// installments, each waiting for the bucket, so one long request (a
    /// `write` command is one) takes about as long as its bytes at the rate
    /// before it passes, where QEMU would let it through at once and make
    /// the next one wait. It counts as one request against `iops-total`.
    fn wait_for(&self, bytes: u64) {
        let burst = {
            let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            s.bps.as_ref().map(|b| (b.rate / 10.0).max(1.0) as u64)
        };
        let mut left = bytes;
        let mut first = true;
        loop {
            let k = burst.map_or(left, |b| left.min(b));
            self.charge(k, first);
            first = false;
            left -= k;
            if left == 0 {
                break;
            }
        }
    }

    /// Blocks until the buckets admit `bytes` (and `io`, one request),
    /// then charges them.
    fn charge(&self, bytes: u64, io: bool) {
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
                    if let Some(b) = &mut s.iops
                        && io
                    {
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

impl FilterPolicy for Throttle {
    const NAME: &'static str = "throttle";

    /// Reads, writes and zone appends count; the rest passes.
    fn admit(&self, req: Request) -> io::Result<()> {
        match req {
            Request::Read(n) | Request::Write(n) | Request::ZoneAppend(n) => self.wait_for(n),
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WriteFlags;
    use crate::null::NullNode;

    #[test]
    fn bandwidth_is_limited() {
        let node = FilterNode::new(
            Arc::new(NullNode::new(1 << 20)),
            Throttle::new(Some(1 << 20), None),
        );
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
        let node = FilterNode::new(
            Arc::new(NullNode::new(1 << 20)),
            Throttle::new(None, Some(100)),
        );
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
