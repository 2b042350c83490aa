//! Progress of long work: a bar on a terminal, plain lines otherwise.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

/// Reports rows extracted.
pub struct Progress {
    bar: Option<ProgressBar>,
    label: String,
    last_line: u64,
}

impl Progress {
    /// Progress of syncing `label` (e.g. the model id).
    pub fn new(label: &str) -> Self {
        Self::doing("sync", label)
    }

    /// Progress of `verb` (`sync`, `what-if`) on `label`.
    pub fn doing(verb: &str, label: &str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::new_spinner();
            b.set_style(
                ProgressStyle::with_template("{spinner} {msg} {human_pos} rows ({per_sec})").expect("template"),
            );
            b.set_message(format!("{verb} {label}"));
            b
        });
        Self { bar, label: format!("{verb} {label}"), last_line: 0 }
    }

    /// Rows read so far.
    pub fn rows(&mut self, n: u64) {
        match &self.bar {
            Some(b) => b.set_position(n),
            None if n >= self.last_line + 100_000 => {
                eprintln!("{}: {n} rows read", self.label);
                self.last_line = n;
            }
            None => {}
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
