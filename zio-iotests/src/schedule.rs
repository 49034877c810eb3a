//! Parallel scheduling: runs tests on N worker threads and hands verdicts
//! back in test order, each as soon as it and all earlier ones are done.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;

use super::config::Config;
use super::discover::TestCase;
use super::outcome::{Verdict, run_one};

/// Runs every test in `tests` with up to `jobs` at a time and calls
/// `on_verdict(index, verdict)` in index order. Returns all verdicts.
pub fn run_all(
    tests: &[TestCase],
    cfg: &Config,
    jobs: usize,
    mut on_verdict: impl FnMut(usize, &Verdict),
) -> Vec<Verdict> {
    let workers = jobs.clamp(1, tests.len().max(1));
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<(usize, Verdict)>();
    let mut verdicts = Vec::with_capacity(tests.len());
    thread::scope(|scope| {
        for _ in 0..workers {
            let tx = tx.clone();
            let next = &next;
            scope.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(test) = tests.get(i) else { break };
                    if tx.send((i, run_one(test, cfg))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut pending = BTreeMap::new();
        for (i, verdict) in rx {
            pending.insert(i, verdict);
            while let Some(verdict) = pending.remove(&verdicts.len()) {
                on_verdict(verdicts.len(), &verdict);
                verdicts.push(verdict);
            }
        }
    });
    verdicts
}
