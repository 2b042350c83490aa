//! Profiles (R9, R10): the identifiers joined by `identify` and `alias`, traits, and consent
//! per category with the consent conflict flag. Pure: the server stores and loads them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// A stored consent value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stored {
    /// Consented.
    True,
    /// Refused.
    False,
    /// Two known users merged and disagreed (counts as false for routing).
    Conflict,
}

/// A category's stored consent and when it was set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryConsent {
    /// The value.
    pub value: Stored,
    /// The consent event's `timestamp` (RFC 3339, UTC, normalized so strings compare in time order).
    pub at: String,
    /// Arrival order, breaking ties of `at`.
    pub seq: u64,
}

impl CategoryConsent {
    fn newer_than(&self, other: &CategoryConsent) -> bool {
        (self.at.as_str(), self.seq) > (other.at.as_str(), other.seq)
    }
}

/// An end user as seen through events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Known user ids.
    pub user_ids: BTreeSet<String>,
    /// Device / anonymous ids.
    pub anonymous_ids: BTreeSet<String>,
    /// Traits from `identify` (last write wins).
    pub traits: Map<String, Value>,
    /// Category id -> stored consent.
    pub consent: BTreeMap<String, CategoryConsent>,
}

/// Most traits a profile keeps.
pub const MAX_TRAITS: usize = 256;
/// Most bytes a profile's traits take, as JSON.
pub const MAX_TRAITS_BYTES: usize = 64 * 1024;

impl Profile {
    /// Adds `identify` traits (last write wins) within [`MAX_TRAITS`] keys and
    /// [`MAX_TRAITS_BYTES`]: a trait that would pass either bound is not stored. Returns the
    /// names of the traits left out, for the event's warnings.
    pub fn add_traits(&mut self, traits: &Map<String, Value>) -> Vec<String> {
        let size = |v: &Value| serde_json::to_string(v).map(|s| s.len()).unwrap_or(usize::MAX);
        let mut bytes: usize = self.traits.iter().map(|(k, v)| k.len() + size(v) + 4).sum();
        let mut left_out = Vec::new();
        for (k, v) in traits {
            let new = k.len() + size(v) + 4;
            let old = self.traits.get(k).map(|o| k.len() + size(o) + 4);
            let keys_after = self.traits.len() + usize::from(old.is_none());
            let bytes_after = bytes.saturating_add(new).saturating_sub(old.unwrap_or(0));
            if keys_after > MAX_TRAITS || bytes_after > MAX_TRAITS_BYTES {
                left_out.push(k.clone());
                continue;
            }
            bytes = bytes_after;
            self.traits.insert(k.clone(), v.clone());
        }
        left_out
    }

    /// R9: the reserved consent event's preferences are the person's full state: every category
    /// of the workspace is replaced (an omitted one becomes false), unless the stored value is
    /// more recent (by timestamp, then arrival).
    pub fn apply_consent_event(&mut self, prefs: &BTreeMap<String, bool>, categories: &[String], at: &str, seq: u64) {
        for cat in categories {
            let value = if prefs.get(cat).copied().unwrap_or(false) { Stored::True } else { Stored::False };
            let new = CategoryConsent { value, at: at.to_string(), seq };
            match self.consent.get(cat) {
                Some(old) if old.newer_than(&new) => {}
                _ => {
                    self.consent.insert(cat.clone(), new);
                }
            }
        }
    }

    /// R10: merges `other` into this profile. Two known users (each with its own userId) that
    /// disagree on a category leave it in conflict; any other disagreement resolves to the most
    /// recent value.
    pub fn merge(&mut self, other: Profile) {
        let known_users_differ =
            !self.user_ids.is_empty() && !other.user_ids.is_empty() && self.user_ids.is_disjoint(&other.user_ids);
        for (cat, theirs) in other.consent {
            match self.consent.get(&cat) {
                None => {
                    self.consent.insert(cat, theirs);
                }
                Some(ours) => {
                    let latest = if theirs.newer_than(ours) { theirs.clone() } else { ours.clone() };
                    let disagree = ours.value != theirs.value;
                    let value = if known_users_differ && disagree { Stored::Conflict } else { latest.value };
                    self.consent.insert(cat, CategoryConsent { value, ..latest });
                }
            }
        }
        self.user_ids.extend(other.user_ids);
        self.anonymous_ids.extend(other.anonymous_ids);
        // this profile's traits win; the other's fill in within the caps
        let theirs: Map<String, Value> =
            other.traits.into_iter().filter(|(k, _)| !self.traits.contains_key(k)).collect();
        self.add_traits(&theirs);
    }

    /// Whether some category is in conflict.
    pub fn consent_conflict(&self) -> bool {
        self.consent.values().any(|c| c.value == Stored::Conflict)
    }

    /// Consent as traits: `true`, `false` or `"conflict"` per category.
    pub fn consent_traits(&self) -> Map<String, Value> {
        self.consent
            .iter()
            .map(|(k, c)| {
                let v = match c.value {
                    Stored::True => Value::Bool(true),
                    Stored::False => Value::Bool(false),
                    Stored::Conflict => Value::String("conflict".into()),
                };
                (k.clone(), v)
            })
            .collect()
    }

    /// Consent for routing: `"conflict"` counts as false; never-collected categories are absent (false).
    pub fn routing_consent(&self) -> BTreeMap<String, bool> {
        self.consent.iter().map(|(k, c)| (k.clone(), c.value == Stored::True)).collect()
    }
}

#[cfg(test)]
mod tests;
