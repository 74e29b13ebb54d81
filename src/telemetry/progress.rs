//! Progress of long operator commands (`index build`, `embed`, `batch wait`): items done, rate
//! and ETA as a bar on stderr when stderr is a terminal, else a log line every 10%.

use indicatif::{ProgressBar, ProgressStyle};

pub struct Progress {
    bar: ProgressBar,
    what: &'static str,
}

impl Progress {
    /// A bar of `total` items; `what` names the work in log lines ("embedding catalog").
    pub fn new(total: u64, what: &'static str) -> Self {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {msg} [{bar:40}] {human_pos}/{human_len} items, {per_sec}, ETA {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_message(what);
        Self { bar, what }
    }

    /// `n` more items done.
    pub fn inc(&self, n: u64) {
        self.set(self.bar.position() + n);
    }

    /// `done` items done in all (for progress read from elsewhere).
    pub fn set(&self, done: u64) {
        let before = self.bar.position();
        self.bar.set_position(done);
        self.log(before, done);
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    /// Without a terminal (CI, containers) the bar is hidden: log each 10% instead.
    fn log(&self, before: u64, done: u64) {
        let total = self.bar.length().unwrap_or(0).max(1);
        let step = (total / 10).max(1);
        if self.bar.is_hidden() && done / step != before / step {
            // The average since the start: work finishes in bursts, so an instant rate swings.
            let rate = done as f64 / self.bar.elapsed().as_secs_f64().max(1e-3);
            tracing::info!(
                done,
                total,
                items_per_second = rate.round(),
                eta_seconds = (total.saturating_sub(done) as f64 / rate.max(1e-3)).round(),
                "{}",
                self.what
            );
        }
    }
}
