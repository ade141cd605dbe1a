//! Progress on standard error, shared by `backup` and `compact`: a progress bar when standard
//! error is a terminal, otherwise one plain line each time another 10% is done (for logs and
//! pipes, where a redrawn bar would be noise). The commands choose what a step counts and how a
//! line reads; this module owns the bar's look and the "every 10%" rule.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// Whether progress goes to a terminal (then a bar), or not (then plain lines).
pub fn on_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// A bar on standard error with `template` (indicatif's template syntax), of unknown length
/// until the first step sets it.
pub fn bar(template: &str) -> ProgressBar {
    let bar = ProgressBar::new(0);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Leaves `bar` as it stands: complete, or abandoned where the work stopped.
pub fn finish(bar: &ProgressBar, complete: bool) {
    if complete {
        bar.finish();
    } else {
        bar.abandon();
    }
}

/// The "every 10%" rule of the plain lines: the last tenth a line was printed for.
#[derive(Debug, Default)]
pub struct Tenths(Option<u64>);

impl Tenths {
    /// The percent done, if a line is due: the first step, and each step that reaches another
    /// tenth. Nothing to do (`total` 0) counts as done.
    pub fn step(&mut self, done: u64, total: u64) -> Option<u64> {
        let percent = done.saturating_mul(100).checked_div(total).unwrap_or(100).min(100);
        let tenth = percent / 10;
        if self.0.is_some_and(|printed| tenth <= printed) {
            return None;
        }
        self.0 = Some(tenth);
        Some(percent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_at_the_first_step_and_at_each_tenth() {
        let mut tenths = Tenths::default();
        let lines: Vec<u64> =
            [0, 5, 10, 19, 20, 55, 99, 100].iter().filter_map(|&done| tenths.step(done, 100)).collect();
        assert_eq!(lines, [0, 10, 20, 55, 99, 100]);
        assert_eq!(Tenths::default().step(0, 0), Some(100));
        assert_eq!(Tenths::default().step(7, 5), Some(100), "never more than 100%");
    }
}
