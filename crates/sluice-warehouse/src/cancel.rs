//! Stopping a warehouse's work from another thread: a preview whose client went away, a
//! scan that must end. The statement running on the server is interrupted (PostgreSQL's
//! cancel request, SQLite's interrupt) and every later one is refused.

use crate::WarehouseError;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// How long [`Canceller::cancel`] keeps interrupting a statement that has not ended yet.
const PATIENCE: Duration = Duration::from_secs(30);

type Interrupt = Box<dyn Fn() + Send + Sync>;

struct Inner {
    cancelled: AtomicBool,
    /// Statements under way (nested: a scan describes its model first).
    busy: AtomicUsize,
    interrupt: OnceLock<Interrupt>,
}

/// Cancels one warehouse's work from any thread; clones share the same state. Create it
/// before opening the warehouse when the cancellation may come at any time, then give it to
/// [`crate::Warehouse::attach_canceller`]: a cancellation that comes before the warehouse is
/// open or between two statements still refuses every later statement.
#[derive(Clone)]
pub struct Canceller(Arc<Inner>);

impl Default for Canceller {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Canceller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Canceller")
            .field("cancelled", &self.is_cancelled())
            .field("busy", &self.0.busy.load(SeqCst))
            .finish()
    }
}

impl Canceller {
    /// A canceller not yet attached to a warehouse.
    pub fn new() -> Self {
        Self(Arc::new(Inner {
            cancelled: AtomicBool::new(false),
            busy: AtomicUsize::new(0),
            interrupt: OnceLock::new(),
        }))
    }

    /// Whether [`Canceller::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.cancelled.load(SeqCst)
    }

    /// Stops the work: later statements are refused, and the one running is interrupted on
    /// the server, again and again until it ended (a cancel request that reaches the server
    /// just before the statement does is lost), for at most 30 s. Blocks (it talks to the
    /// server): call it from a thread that may block, not from an async task.
    pub fn cancel(&self) {
        self.0.cancelled.store(true, SeqCst);
        let start = Instant::now();
        let mut pause = Duration::from_millis(50);
        while self.0.busy.load(SeqCst) > 0 && start.elapsed() < PATIENCE {
            if let Some(interrupt) = self.0.interrupt.get() {
                interrupt();
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    /// Whether a statement is under way.
    #[cfg(test)]
    pub(crate) fn is_busy(&self) -> bool {
        self.0.busy.load(SeqCst) > 0
    }

    /// Sets how the warehouse interrupts its running statement; `false` if this canceller
    /// already serves another warehouse.
    pub(crate) fn install(&self, interrupt: Interrupt) -> bool {
        self.0.interrupt.set(interrupt).is_ok()
    }

    /// `e`, or the cancellation that caused it.
    pub(crate) fn explain(&self, e: WarehouseError) -> WarehouseError {
        if self.is_cancelled() {
            cancelled()
        } else {
            e
        }
    }

    /// Marks a statement under way until the guard is dropped; refused once cancelled.
    pub(crate) fn busy(&self) -> Result<Busy, WarehouseError> {
        // busy first, then the check: `cancel` sets the flag first, then looks at busy, so
        // either this statement sees the flag or `cancel` sees the statement
        self.0.busy.fetch_add(1, SeqCst);
        let guard = Busy(self.0.clone());
        if self.is_cancelled() {
            return Err(cancelled());
        }
        Ok(guard)
    }
}

/// The error of work stopped by a [`Canceller`].
pub(crate) fn cancelled() -> WarehouseError {
    WarehouseError::Cancelled
}

/// A statement under way (see [`Canceller::busy`]).
pub(crate) struct Busy(Arc<Inner>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancelled_before_the_statement_refuses_it() {
        let c = Canceller::new();
        assert!(c.busy().is_ok());
        c.cancel();
        assert!(c.is_cancelled());
        assert!(matches!(c.busy(), Err(WarehouseError::Cancelled)));
        assert_eq!(c.0.busy.load(SeqCst), 0, "a refused statement is not left busy");
        assert!(c.install(Box::new(|| ())));
        assert!(!c.install(Box::new(|| ())), "one canceller serves one warehouse");
    }
}
