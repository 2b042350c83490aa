//! Keeps the server's long-running threads (a delivery worker per destination, the scheduler)
//! alive: one that panics or returns before it was asked to stop is restarted after a backoff,
//! with a log line saying why and a count in `sluice_worker_restarts`.

use crate::metrics::{Metrics, Worker};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Waits before restarts: `initial`, doubling up to `max`; a run that lasted longer than `max`
/// was healthy and starts the doubling over.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// Wait before the first restart.
    pub initial: Duration,
    /// Longest wait.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { initial: Duration::from_secs(1), max: Duration::from_secs(60) }
    }
}

impl Backoff {
    fn delay(&self, failures: u32) -> Duration {
        self.initial.saturating_mul(1u32 << failures.min(16)).min(self.max)
    }
}

/// Runs `body` on this thread until `stop` is set, restarting it whenever it panics, fails
/// (`Err(why)`) or returns while `stop` is not set. `worker` names it in logs and metrics.
pub fn keep_alive(
    worker: &str,
    stop: &AtomicBool,
    metrics: &Metrics,
    backoff: Backoff,
    mut body: impl FnMut() -> Result<(), String>,
) {
    let mut failures = 0u32;
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        // the body builds its own state (connections, sinks) on each run: nothing half-updated
        // survives a panic
        let outcome = catch_unwind(AssertUnwindSafe(&mut body));
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let reason = match outcome {
            Ok(Ok(())) => "returned before it was asked to stop".to_string(),
            Ok(Err(why)) => why,
            Err(payload) => format!("panicked: {}", sluice_core::panic_message(payload.as_ref())),
        };
        if started.elapsed() > backoff.max {
            failures = 0;
        }
        let wait = backoff.delay(failures);
        failures = failures.saturating_add(1);
        metrics.restarts.get_or_create(&Worker { worker: worker.to_string() }).inc();
        tracing::error!(
            worker,
            reason = %reason,
            consecutive = failures,
            ran_ms = started.elapsed().as_millis() as u64,
            restart_in_ms = wait.as_millis() as u64,
            "worker stopped unexpectedly; restarting it"
        );
        sleep_unless(stop, wait);
    }
}

/// Sleeps for `d`, or less when `stop` is set meanwhile.
pub fn sleep_unless(stop: &AtomicBool, d: Duration) {
    let until = Instant::now() + d;
    while !stop.load(Ordering::Relaxed) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_worker_that_panics_or_returns_is_restarted_and_counted() {
        let metrics = Arc::new(Metrics::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (m, st) = (metrics.clone(), stop.clone());
        let runs = std::thread::spawn(move || {
            let mut runs = 0;
            let fast = Backoff { initial: Duration::from_millis(1), max: Duration::from_millis(20) };
            keep_alive("deliver-x", &st, &m, fast, || {
                runs += 1;
                match runs {
                    1 => panic!("boom {runs}"),
                    2 => Err("cannot open the event log".into()),
                    3 => Ok(()),
                    _ => {
                        // healthy: runs until asked to stop
                        st.store(true, Ordering::Relaxed);
                        Ok(())
                    }
                }
            });
            runs
        })
        .join()
        .expect("the supervisor itself survives");
        assert_eq!(runs, 4, "restarted after a panic, an error and an early return");
        let text = metrics.render();
        assert!(text.contains("sluice_worker_restarts_total{worker=\"deliver-x\"} 3"), "{text}");
        assert_eq!(sluice_core::panic_message(&"x"), "x");
        assert_eq!(sluice_core::panic_message(&String::from("y")), "y");
        assert_eq!(sluice_core::panic_message(&1u8), "a panic without a message");
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let b = Backoff::default();
        assert_eq!(b.delay(0), Duration::from_secs(1));
        assert_eq!(b.delay(3), Duration::from_secs(8));
        assert_eq!(b.delay(40), Duration::from_secs(60));
    }
}
