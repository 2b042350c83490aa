//! Walks a mapping's checkpoint in id order, page by page, alongside the sorted model rows.

use sluice_state::{Entry, Result, StateStore};
use std::collections::VecDeque;

const PAGE: usize = 2048;

/// A forward-only reader of one mapping's checkpoint.
pub struct Cursor {
    mapping: i64,
    buf: VecDeque<Entry>,
    after: Option<String>,
    done: bool,
}

impl Cursor {
    /// A cursor at the start of `mapping`'s checkpoint.
    pub fn new(mapping: i64) -> Self {
        Self { mapping, buf: VecDeque::new(), after: None, done: false }
    }

    fn peek(&mut self, store: &StateStore) -> Result<Option<&Entry>> {
        if self.buf.is_empty() && !self.done {
            let page = store.checkpoint_page(self.mapping, self.after.as_deref(), PAGE)?;
            self.done = page.len() < PAGE;
            if let Some(last) = page.last() {
                self.after = Some(last.id.clone());
            }
            self.buf.extend(page);
        }
        Ok(self.buf.front())
    }

    /// Moves to `id`: entries before it (gone from the model) go to `gone`; the entry for `id`,
    /// if any, is returned.
    pub fn seek(&mut self, store: &StateStore, id: &str, gone: &mut Vec<Entry>) -> Result<Option<Entry>> {
        while let Some(e) = self.peek(store)? {
            match e.id.as_bytes().cmp(id.as_bytes()) {
                std::cmp::Ordering::Less => gone.extend(self.buf.pop_front()),
                std::cmp::Ordering::Equal => return Ok(self.buf.pop_front()),
                std::cmp::Ordering::Greater => return Ok(None),
            }
        }
        Ok(None)
    }

    /// Every remaining entry (gone from the model).
    pub fn rest(&mut self, store: &StateStore, gone: &mut Vec<Entry>) -> Result<()> {
        while self.peek(store)?.is_some() {
            gone.extend(self.buf.drain(..));
        }
        Ok(())
    }
}
