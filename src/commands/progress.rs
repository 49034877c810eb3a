//! Progress bars for long commands, on stderr and only at a terminal.
//!
//! A [`Progress`] stays invisible for its first second, so quick commands
//! (and every run whose stderr is a file or a pipe, as in the iotests)
//! print nothing extra; after that it draws an indicatif bar (or, without
//! a known total, a spinner) and clears it when the command ends, before
//! the command's report line. Any command may use it:
//!
//! ```ignore
//! let bar = Progress::new("write", Some(count));
//! // One request; the block layer reports the bytes done as it goes.
//! let r = blk.write_pattern(offset, count, byte, flags, &|n| bar.inc(n));
//! bar.finish(); // or just drop it
//! ```

use std::io::{self, IsTerminal};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};

/// How long a command runs before its bar appears.
pub const SHOW_AFTER: Duration = Duration::from_secs(1);

/// Requests at least this large get a bar (which moves as the block layer
/// reports the bytes done); smaller ones end too soon to need one.
pub const PIECE: u64 = 64 << 20;

/// True if progress bars may be drawn: stderr is a terminal (not `dumb`)
/// and `ZIO_PROGRESS` is not `0`/`never`/`off`.
pub fn enabled() -> bool {
    if matches!(
        std::env::var("ZIO_PROGRESS").as_deref(),
        Ok("0" | "never" | "off")
    ) {
        return false;
    }
    std::env::var("TERM").as_deref() != Ok("dumb") && std::io::stderr().is_terminal()
}

/// Stderr, two columns narrower than it is. indicatif pads a bar to the
/// terminal's width, leaving the cursor in the last column; a Ctrl-C
/// echoed there (`^C`) would wrap to a new line and leave the bar behind
/// when the interrupted command clears it. Two spare columns keep the
/// echo on the bar's line, which the clearing wipes.
#[derive(Debug)]
struct Narrowed(console::Term);

impl TermLike for Narrowed {
    fn width(&self) -> u16 {
        self.0.size().1.saturating_sub(2).max(1)
    }

    fn height(&self) -> u16 {
        self.0.size().0
    }

    fn move_cursor_up(&self, n: usize) -> io::Result<()> {
        self.0.move_cursor_up(n)
    }

    fn move_cursor_down(&self, n: usize) -> io::Result<()> {
        self.0.move_cursor_down(n)
    }

    fn move_cursor_right(&self, n: usize) -> io::Result<()> {
        self.0.move_cursor_right(n)
    }

    fn move_cursor_left(&self, n: usize) -> io::Result<()> {
        self.0.move_cursor_left(n)
    }

    fn write_line(&self, s: &str) -> io::Result<()> {
        self.0.write_line(s)
    }

    fn write_str(&self, s: &str) -> io::Result<()> {
        self.0.write_str(s)
    }

    fn clear_line(&self) -> io::Result<()> {
        self.0.clear_line()
    }

    fn flush(&self) -> io::Result<()> {
        self.0.flush()
    }
}

/// A progress bar that shows itself after [`SHOW_AFTER`]. Cheap when
/// disabled: every method is then a no-op.
pub struct Progress {
    bar: Option<ProgressBar>,
    /// Dropped (or sent to) to tell the timer thread the command is done.
    stop: Option<mpsc::Sender<()>>,
    timer: Option<JoinHandle<()>>,
}

impl Progress {
    /// A bar labelled `label` (the command word) over `total` bytes, or a
    /// spinner showing elapsed time when the total is unknown or cannot be
    /// followed. Disabled unless [`enabled`].
    pub fn new(label: &str, total: Option<u64>) -> Self {
        if !enabled() {
            return Progress::disabled();
        }
        Progress::start(label, total)
    }

    /// A bar counting `total` things (`unit`: "zones", "appends"), for
    /// commands whose progress is not in bytes.
    pub fn counting(label: &str, total: u64, unit: &str) -> Self {
        if !enabled() {
            return Progress::disabled();
        }
        let p = Progress::start(label, Some(total));
        if let Some(b) = &p.bar
            && let Ok(style) = ProgressStyle::with_template(&format!(
                "{{prefix}} [{{bar:30}}] {{pos}}/{{len}} {unit} ({{eta}} left)"
            ))
        {
            b.set_style(style.progress_chars("=> "));
        }
        p
    }

    /// A bar that never draws.
    pub fn disabled() -> Self {
        Progress {
            bar: None,
            stop: None,
            timer: None,
        }
    }

    fn start(label: &str, total: Option<u64>) -> Self {
        let (bar, style) = match total {
            Some(len) => (
                ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::hidden()),
                ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {binary_bytes}/{binary_total_bytes} ({binary_bytes_per_sec}, {eta} left)",
                )
                .map(|s| s.progress_chars("=> ")),
            ),
            None => (
                ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden()),
                ProgressStyle::with_template("{prefix} {spinner} {msg} {elapsed}"),
            ),
        };
        if let Ok(style) = style {
            bar.set_style(style);
        }
        bar.set_prefix(label.to_string());
        let (stop, rx) = mpsc::channel::<()>();
        let shown = bar.clone();
        let timer = std::thread::Builder::new()
            .name("zio-progress".into())
            .spawn(move || {
                if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(SHOW_AFTER) {
                    shown.set_draw_target(ProgressDrawTarget::term_like_with_hz(
                        Box::new(Narrowed(console::Term::stderr())),
                        20,
                    ));
                    shown.enable_steady_tick(Duration::from_millis(200));
                }
            })
            .ok();
        Progress {
            bar: Some(bar),
            stop: Some(stop),
            timer,
        }
    }

    /// True if this bar may draw (stderr is a terminal).
    pub fn is_enabled(&self) -> bool {
        self.bar.is_some()
    }

    /// `bytes` more are done.
    pub fn inc(&self, bytes: u64) {
        if let Some(b) = &self.bar {
            b.inc(bytes);
        }
    }

    /// `bytes` are done in all.
    pub fn set_position(&self, bytes: u64) {
        if let Some(b) = &self.bar {
            b.set_position(bytes);
        }
    }

    /// A short note after a spinner (e.g. `1 GiB`).
    pub fn set_message(&self, msg: impl Into<String>) {
        if let Some(b) = &self.bar {
            b.set_message(msg.into());
        }
    }

    /// Ends the bar and wipes it from the terminal. Dropping does the same.
    pub fn finish(mut self) {
        self.end();
    }

    fn end(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.timer.take() {
            let _ = t.join();
        }
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_bar_is_inert() {
        let p = Progress::disabled();
        assert!(!p.is_enabled());
        p.inc(5);
        p.set_position(10);
        p.finish();
    }

    #[test]
    fn started_bar_ends_before_it_shows() {
        let p = Progress::start("write", Some(100));
        p.inc(50);
        p.finish();
        let s = Progress::start("discard", None);
        s.set_message("1 GiB");
        drop(s);
    }
}
