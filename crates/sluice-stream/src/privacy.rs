//! The suppressed identifiers of privacy requests (SPEC §12) as `serve` holds them: an
//! arc-swapped set the writer checks per event in O(1), reloaded from `state.db` when its privacy
//! version moves (a request made by the CLI) or at once by the control API that made one.

use arc_swap::ArcSwap;
use sluice_state::StateStore;
use std::collections::HashSet;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// The suppressed identifiers (`userId`s and `anonymousId`s alike).
#[derive(Default)]
pub struct Suppressed {
    set: ArcSwap<HashSet<String>>,
    /// The privacy version the set was loaded at (-1: never loaded).
    version: AtomicI64,
}

impl Suppressed {
    /// An empty set that has not been loaded yet.
    pub fn new() -> Self {
        Self { set: ArcSwap::default(), version: AtomicI64::new(-1) }
    }

    /// A set holding `ids` (tests).
    pub fn of(ids: impl IntoIterator<Item = String>) -> Self {
        let s = Self::new();
        s.set.store(Arc::new(ids.into_iter().collect()));
        s
    }

    /// Whether `ident` is suppressed.
    pub fn contains(&self, ident: &str) -> bool {
        let set = self.set.load();
        !set.is_empty() && set.contains(ident)
    }

    /// Whether nothing is suppressed (the common case costs one load).
    pub fn is_empty(&self) -> bool {
        self.set.load().is_empty()
    }

    /// How many identifiers are suppressed.
    pub fn len(&self) -> usize {
        self.set.load().len()
    }

    /// Reloads the set if the stored privacy version moved; returns whether it did. One
    /// single-row read when nothing changed.
    pub fn refresh(&self, store: &StateStore) -> sluice_state::Result<bool> {
        self.refresh_from(store.privacy_version()?, || store.suppressed_ids())
    }

    /// Reloads the set with `ids` if `version` (the stored privacy version, read by the caller
    /// on its own connection) moved; returns whether it did.
    pub fn refresh_from<E>(
        &self,
        version: i64,
        ids: impl FnOnce() -> Result<std::collections::HashSet<String>, E>,
    ) -> Result<bool, E> {
        if version == self.version.load(Ordering::Acquire) {
            return Ok(false);
        }
        let ids = ids()?;
        self.set.store(Arc::new(ids));
        self.version.store(version, Ordering::Release);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_stored_version() {
        let d = tempfile::tempdir().unwrap();
        let mut store = StateStore::open(d.path()).unwrap();
        let s = Suppressed::new();
        assert!(s.refresh(&store).unwrap(), "first load");
        assert!(!s.refresh(&store).unwrap() && s.is_empty());
        store
            .create_regulation(&sluice_state::NewRegulation {
                id: sluice_state::privacy::new_regulation_id(),
                kind: sluice_state::RegulationType::SuppressOnly,
                subject_type: "USER_ID".into(),
                subject_ids: vec!["u1".into()],
                joined_ids: vec![],
                destinations: vec![],
                created_by: "cli:test".into(),
            })
            .unwrap();
        assert!(s.refresh(&store).unwrap());
        assert!(s.contains("u1") && !s.contains("u2"));
    }
}
