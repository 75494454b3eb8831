//! The progress bar shown while a cell runs: elapsed time and the current request rate. Drawn only
//! on a terminal.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::scenario::ScenarioConfig;

pub struct CellProgress {
    bar: ProgressBar,
    ticker: tokio::task::JoinHandle<()>,
}

impl CellProgress {
    /// Start showing progress; `done` is the scenario's operation counter.
    pub fn start(
        label: &str,
        scenario: &ScenarioConfig,
        enabled: bool,
        done: Arc<AtomicU64>,
    ) -> CellProgress {
        let seconds = scenario.planned_seconds();
        let target = if enabled {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(seconds), target);
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {elapsed}/{len}s {msg}")
                .expect("static template")
                .progress_chars("=> "),
        );
        bar.set_prefix(label.to_string());
        let ticker = {
            let bar = bar.clone();
            tokio::spawn(async move {
                let mut last = 0;
                loop {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    let now = done.load(Ordering::Relaxed);
                    bar.set_message(format!("{} ops/s", (now - last) * 4));
                    bar.set_position(bar.elapsed().as_secs());
                    last = now;
                }
            })
        };
        CellProgress { bar, ticker }
    }

    pub fn finish(self) {
        self.ticker.abort();
        self.bar.finish_and_clear();
    }
}
