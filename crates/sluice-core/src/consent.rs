//! Consent decisions for Reverse ETL records (R1–R5, R12).
//!
//! A [`Gate`] is computed once per (model, destination) from the workspace; then
//! [`Gate::decide`] runs for every row with no allocation on the send path.

use crate::catalog::{Catalog, ConsentMode};
use crate::config::{ModelConfig, Policy, UnmappedModels, WorkspaceFile};
use serde_json::Value;

/// The enabled categories that govern destination `dest_id`, in workspace order (R1: none means
/// unrestricted; R12: disabled categories are ignored). The one definition Reverse ETL
/// ([`Gate`]), event routing ([`crate::events::DestinationPlan`]) and audits share.
pub fn required_categories<'a>(ws: &'a WorkspaceFile, dest_id: &str) -> Vec<&'a str> {
    ws.consent_categories
        .iter()
        .filter(|c| c.enabled && c.destinations.iter().any(|d| d == dest_id))
        .map(|c| c.id.as_str())
        .collect()
}

/// [`required_categories`] of every destination at once, in time linear in the workspace:
/// destination id -> its categories (absent: unrestricted).
pub fn required_by_destination(ws: &WorkspaceFile) -> std::collections::HashMap<&str, Vec<&str>> {
    let mut out: std::collections::HashMap<&str, Vec<&str>> = std::collections::HashMap::new();
    for c in ws.consent_categories.iter().filter(|c| c.enabled) {
        let mut seen = std::collections::HashSet::new();
        for d in &c.destinations {
            if seen.insert(d.as_str()) {
                out.entry(d.as_str()).or_default().push(c.id.as_str());
            }
        }
    }
    out
}

/// The policy a destination's required categories combine by: its own `consent_policy`, else
/// the workspace's `policy` (SPEC §12). Every consent decision asks this.
pub fn policy_for(ws: &WorkspaceFile, dest_id: &str) -> Policy {
    ws.destinations.iter().find(|d| d.id == dest_id).and_then(|d| d.consent_policy).unwrap_or(ws.workspace.policy)
}

/// R2: whether a record or event passes `policy`, given whether each required category was
/// granted (`all`: every one; `any`: at least one). The one place the policy is decided.
pub fn policy_passes(policy: Policy, granted: impl IntoIterator<Item = bool>) -> bool {
    let mut granted = granted.into_iter();
    match policy {
        Policy::All => granted.all(|g| g),
        Policy::Any => granted.any(|g| g),
    }
}

/// R5, decided here only: whether Reverse ETL stamps each record's consent on what it sends to
/// destination `dest_id` instead of filtering (its kind says so, e.g. `connections`). Streamed
/// events are routed by consent whatever the kind: the stamp is for records only.
pub fn stamps_consent(ws: &WorkspaceFile, catalog: &dyn Catalog, dest_id: &str) -> bool {
    ws.destinations
        .iter()
        .find(|d| d.id == dest_id)
        .and_then(|d| catalog.kind(&d.kind))
        .is_some_and(|k| k.consent == ConsentMode::Stamps)
}

/// R5 with R4: what Reverse ETL stamps on a record sent to a stamping destination, as
/// (category id, column of the model holding it; `None`: stamped "no"). A model with consent
/// mappings stamps each mapped category from its column (a column the SQL lacks is "no", R3). A
/// model with none stamps nothing under `unmapped_models: allow` (downstream, as in R4, nothing
/// is restricted), and "no" for every enabled category under `block`: failing closed must hold
/// downstream too, where an event without a consent object would be unrestricted (R7).
pub fn stamp_columns<'a>(ws: &'a WorkspaceFile, model: &'a ModelConfig) -> Vec<(&'a str, Option<&'a str>)> {
    if !model.consent.is_empty() {
        return model.consent.iter().map(|(cat, col)| (cat.as_str(), Some(col.as_str()))).collect();
    }
    match ws.workspace.unmapped_models {
        UnmappedModels::Allow => vec![],
        UnmappedModels::Block => {
            ws.consent_categories.iter().filter(|c| c.enabled).map(|c| (c.id.as_str(), None)).collect()
        }
    }
}

/// A consent value read from a warehouse cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentValue {
    /// Consented.
    Granted,
    /// Explicitly refused.
    Refused,
    /// NULL, missing or unparsable: not consented, and counted as a validation warning.
    Invalid,
}

impl ConsentValue {
    /// Only `Granted` lets data through (fail closed).
    pub fn granted(self) -> bool {
        self == Self::Granted
    }
}

/// Parses a warehouse cell as SPEC §2 says: `true`/`false`, `t`/`f`, `1`/`0` and the strings
/// `"true"`/`"false"` in any case; anything else, NULL included, is `Invalid`.
pub fn parse_consent(v: &Value) -> ConsentValue {
    match v {
        Value::Bool(true) => ConsentValue::Granted,
        Value::Bool(false) => ConsentValue::Refused,
        Value::Number(n) => match n.as_i64() {
            Some(1) => ConsentValue::Granted,
            Some(0) => ConsentValue::Refused,
            _ => ConsentValue::Invalid,
        },
        Value::String(s) => parse_consent_str(s),
        _ => ConsentValue::Invalid,
    }
}

/// The string half of [`parse_consent`].
pub fn parse_consent_str(s: &str) -> ConsentValue {
    let s = s.trim();
    if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("t") || s == "1" {
        ConsentValue::Granted
    } else if s.eq_ignore_ascii_case("false") || s.eq_ignore_ascii_case("f") || s == "0" {
        ConsentValue::Refused
    } else {
        ConsentValue::Invalid
    }
}

/// One category a destination requires, and where its consent is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// Category id.
    pub category: String,
    /// Column index in the model's rows; `None` means "no column": false for every record (R3).
    pub column: Option<usize>,
}

/// Why a gate is open for everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenReason {
    /// R1: the destination is mapped to no enabled category.
    UnmappedDestination,
    /// R4: the model maps no consent column (and `unmapped_models: allow`).
    UnmappedModel,
    /// R5: the destination's kind stamps consent instead of filtering (e.g. `connections`).
    Stamps,
}

/// The consent check for one (model, destination).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// Every record passes.
    Open(OpenReason),
    /// Records pass only by these categories under `policy`.
    Check {
        /// `all` or `any`.
        policy: Policy,
        /// The enabled categories mapped to the destination.
        required: Vec<Requirement>,
    },
}

/// The decision for one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Send it.
    Send,
    /// Withhold it; the indices (into the gate's `required`) of the categories that refused.
    Withhold(Vec<usize>),
}

impl Gate {
    /// Builds the gate of `model` for destination `dest_id`. `column_of` resolves a column name
    /// of the model to its index (the engine resolves names against the real columns).
    pub fn build(
        ws: &WorkspaceFile,
        catalog: &dyn Catalog,
        model: &ModelConfig,
        dest_id: &str,
        column_of: &dyn Fn(&str) -> Option<usize>,
    ) -> Gate {
        if stamps_consent(ws, catalog, dest_id) {
            return Gate::Open(OpenReason::Stamps);
        }
        let required = required_categories(ws, dest_id);
        if required.is_empty() {
            return Gate::Open(OpenReason::UnmappedDestination);
        }
        let policy = policy_for(ws, dest_id);
        if model.consent.is_empty() {
            return match ws.workspace.unmapped_models {
                UnmappedModels::Allow => Gate::Open(OpenReason::UnmappedModel),
                UnmappedModels::Block => Gate::Check {
                    policy,
                    required: required.iter().map(|c| Requirement { category: c.to_string(), column: None }).collect(),
                },
            };
        }
        let required = required
            .iter()
            .map(|c| Requirement {
                category: c.to_string(),
                column: model.consent.get(*c).and_then(|col| column_of(col)),
            })
            .collect();
        Gate::Check { policy, required }
    }

    /// Decides one record. `value(column)` returns the parsed consent in that column.
    pub fn decide(&self, value: impl Fn(usize) -> ConsentValue) -> Verdict {
        match self {
            Gate::Open(_) => Verdict::Send,
            Gate::Check { policy, required } => {
                let granted = |r: &Requirement| r.column.is_some_and(|c| value(c).granted());
                let pass = policy_passes(*policy, required.iter().map(granted));
                if pass {
                    Verdict::Send
                } else {
                    Verdict::Withhold(
                        required.iter().enumerate().filter(|(_, r)| !granted(r)).map(|(i, _)| i).collect(),
                    )
                }
            }
        }
    }

    /// The categories the gate checks (empty when open).
    pub fn required(&self) -> &[Requirement] {
        match self {
            Gate::Open(_) => &[],
            Gate::Check { required, .. } => required,
        }
    }
}

#[cfg(test)]
mod tests;
