//! The aio requests in flight: each aio_read/aio_write runs in a thread of
//! its own on a clone of the backend, so a request stopped at a blkdebug
//! breakpoint (or behind an overlapping request) lets later commands and
//! requests go on, as qemu-io's coroutines do. Output stays in program
//! order: a request's report is kept and printed by the shell when it
//! settles (after every command that has requests in flight, and while
//! `aio_flush` and `wait_break` wait), interleaved in time order with the
//! `blkdebug: Suspended request` lines of requests stopping. Settling waits
//! until every request in flight has completed or stopped; a request that
//! neither stops nor waits completes before its command returns.

use std::io::{self, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Console, Status};
use zio_block::BlockBackend;

/// What a request printed (stdout and stderr pieces, in order), and when
/// it completed.
struct Done {
    at: Instant,
    pieces: Pieces,
}

/// Output pieces, each from one stream.
type Pieces = Vec<(Stream, Vec<u8>)>;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stream {
    Out,
    Err,
}

/// One stream of a request's output, kept in order with the other.
#[derive(Clone)]
struct Captured {
    stream: Stream,
    pieces: Arc<Mutex<Pieces>>,
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut p = self.pieces.lock().unwrap_or_else(|e| e.into_inner());
        match p.last_mut() {
            Some((s, bytes)) if *s == self.stream => bytes.extend_from_slice(buf),
            _ => p.push((self.stream, buf.to_vec())),
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The session's aio requests in flight.
pub struct AioSet {
    in_flight: Arc<AtomicUsize>,
    tx: Sender<Done>,
    rx: Receiver<Done>,
}

impl Default for AioSet {
    fn default() -> Self {
        let (tx, rx) = channel();
        AioSet {
            in_flight: Arc::default(),
            tx,
            rx,
        }
    }
}

/// How often settling looks again.
const POLL: Duration = Duration::from_micros(200);

impl AioSet {
    /// Requests made and not completed.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Runs `job` (the I/O and report of one request) in a thread of its
    /// own on a clone of `blk`, then settles.
    pub fn submit(
        &mut self,
        blk: &BlockBackend,
        con: &mut Console,
        job: impl FnOnce(&BlockBackend, &mut Console) + Send + 'static,
    ) {
        self.spawn(blk, con, job);
        self.settle(blk, con);
    }

    /// Runs a synchronous command on an image with a blkdebug node, in a
    /// thread as an aio request, and waits for it. Where it stops (at a
    /// breakpoint, or behind a suspended request), no later command could
    /// resume it and qemu-io would wait for ever: zio resumes every
    /// suspended request, saying so, until the command completes.
    pub fn run_sync(
        &mut self,
        blk: &BlockBackend,
        con: &mut Console,
        job: impl FnOnce(&BlockBackend, &mut Console) -> Status + Send + 'static,
    ) -> Status {
        let (tx, rx) = channel();
        self.spawn(blk, con, move |b, c| {
            let _ = tx.send(job(b, c));
        });
        loop {
            self.settle(blk, con);
            if let Ok(status) = rx.try_recv() {
                return status;
            }
            let tags = blk.debug_resume_all();
            if tags.is_empty() {
                // Not reached: a stopped request waits for a suspended one.
                return Status::Failed;
            }
            for tag in tags {
                con.say(&resuming(&tag));
            }
        }
    }

    /// Starts `job` in a thread of its own on a clone of `blk`; where no
    /// thread can be made, runs it here.
    fn spawn(
        &mut self,
        blk: &BlockBackend,
        con: &mut Console,
        job: impl FnOnce(&BlockBackend, &mut Console) + Send + 'static,
    ) {
        let (tx, count, own) = (self.tx.clone(), self.in_flight.clone(), blk.clone());
        let prog = con.prog;
        count.fetch_add(1, Ordering::SeqCst);
        let job = Arc::new(Mutex::new(Some(job)));
        let run = {
            let job = job.clone();
            move || {
                let pieces = Arc::new(Mutex::new(Vec::new()));
                let [out, err] = [Stream::Out, Stream::Err].map(|stream| Captured {
                    stream,
                    pieces: pieces.clone(),
                });
                let mut c = Console::new(Box::new(out), Box::new(err));
                c.prog = prog;
                if let Some(job) = job.lock().unwrap_or_else(|e| e.into_inner()).take() {
                    job(&own, &mut c);
                }
                c.flush();
                // Completed when the request left the blkdebug node, before
                // the requests it held back went on.
                let at = BlockBackend::debug_take_request_end().unwrap_or_else(Instant::now);
                drop(c);
                // The graph is let go before the request counts as done, so
                // a close after it really closes (and unlocks) the image.
                drop(own);
                let pieces = std::mem::take(&mut *pieces.lock().unwrap_or_else(|e| e.into_inner()));
                let _ = tx.send(Done { at, pieces });
                count.fetch_sub(1, Ordering::SeqCst);
            }
        };
        if std::thread::Builder::new()
            .name("zio-aio".into())
            .spawn(run)
            .is_err()
        {
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            if let Some(job) = job.lock().unwrap_or_else(|e| e.into_inner()).take() {
                job(blk, con);
            }
        }
    }

    /// Waits until every request in flight has completed or stopped (at a
    /// breakpoint, or behind another request), then prints what happened
    /// since the last time, in time order.
    pub fn settle(&mut self, blk: &BlockBackend, con: &mut Console) {
        while self.in_flight() > blk.debug_parked() {
            std::thread::sleep(POLL);
        }
        let mut lines: Vec<Done> = blk
            .debug_take_suspensions()
            .into_iter()
            .map(|(at, tag)| Done {
                at,
                pieces: vec![(
                    Stream::Out,
                    format!("blkdebug: Suspended request '{tag}'\n").into_bytes(),
                )],
            })
            .chain(self.rx.try_iter())
            .collect();
        lines.sort_by_key(|d| d.at);
        for (stream, bytes) in lines.into_iter().flat_map(|d| d.pieces) {
            let _ = match stream {
                Stream::Out => con.out().write_all(&bytes),
                Stream::Err => con.err().write_all(&bytes),
            };
        }
    }

    /// Waits for every request in flight, resuming the stopped ones, and
    /// disarms every breakpoint (each resume said as `resume` says it):
    /// what a close or the end of the session does before the image's
    /// last flush, where qemu-io would wait for ever.
    pub fn drain(&mut self, blk: &BlockBackend, con: &mut Console) {
        blk.debug_disarm_all();
        loop {
            self.settle(blk, con);
            let tags = blk.debug_resume_all();
            if tags.is_empty() {
                // Nothing stopped at a breakpoint: after settling, nothing
                // is in flight either (a waiting request waits for one).
                break;
            }
            for tag in tags {
                con.say(&resuming(&tag));
            }
        }
    }
}

/// The line blkdebug prints as it resumes a request.
pub fn resuming(tag: &str) -> String {
    format!("blkdebug: Resuming request '{tag}'")
}
