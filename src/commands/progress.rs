//! Shows an apply's progress on stderr: a bar on a terminal, else a line
//! per batch, so that CI logs show how far it got.

use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::engine::progress::{Progress, Step};
use crate::plan::Change;
use crate::render::progress::{bar_message, line};

/// Where the reports go.
pub enum Reporter {
    /// A bar redrawn in place, counts per action and elapsed time.
    Bar(Mutex<Option<ProgressBar>>),
    /// A line per batch.
    Lines,
}

impl Reporter {
    /// A bar when stderr is a terminal, lines otherwise.
    pub fn for_stderr() -> Self {
        if std::io::stderr().is_terminal() {
            Reporter::Bar(Mutex::new(None))
        } else {
            Reporter::Lines
        }
    }

    /// Takes the bar off the screen, before the summary is printed.
    pub fn finish(&self) {
        if let Reporter::Bar(bar) = self
            && let Some(bar) = bar.lock().expect("not poisoned").take()
        {
            bar.finish_and_clear();
        }
    }
}

impl Progress for Reporter {
    fn start(&self, changes: &[Change], _batches: usize) {
        let Reporter::Bar(slot) = self else { return };
        let bar =
            ProgressBar::with_draw_target(Some(changes.len() as u64), ProgressDrawTarget::stderr());
        let style =
            ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} changes  {msg}")
                .expect("the template parses")
                .progress_chars("=> ");
        bar.set_style(style);
        // Redrawn now and then even without a batch, so the clock moves.
        bar.enable_steady_tick(std::time::Duration::from_millis(500));
        *slot.lock().expect("not poisoned") = Some(bar);
    }

    fn step(&self, step: &Step<'_>) {
        match self {
            Reporter::Lines => eprintln!("{}", line(step)),
            Reporter::Bar(slot) => {
                if let Some(bar) = slot.lock().expect("not poisoned").as_ref() {
                    bar.inc((step.applied + step.failed) as u64);
                    bar.set_message(bar_message(step));
                }
            }
        }
    }
}
