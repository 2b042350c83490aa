//! The append-only audit log of configuration changes: who, when, what, before and after.
//! Triggers in the schema refuse any update or delete of its rows (on both backends).

use crate::{on, Result, StateStore};
use serde::Serialize;

/// One change (also the control API's shape of an audit log entry).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// Position in the log.
    pub id: i64,
    /// When (RFC 3339).
    pub at: String,
    /// Who (`cli:USER` for the command line).
    pub actor: String,
    /// `create`, `change` or `remove`.
    pub action: String,
    /// The kind of entity.
    pub kind: String,
    /// The entity's id.
    pub entity: String,
    /// The entity before (credentials redacted).
    #[schema(value_type = Option<Object>)]
    pub before: Option<serde_json::Value>,
    /// The entity after (credentials redacted).
    #[schema(value_type = Option<Object>)]
    pub after: Option<serde_json::Value>,
}

impl StateStore {
    /// Appends changes in one transaction.
    pub fn append_audit(&mut self, entries: &[AuditEntry]) -> Result<()> {
        on!(mut self, b => b.append_audit(entries))
    }

    /// The newest `limit` entries, newest first.
    pub fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>> {
        on!(self, b => b.audit_log(limit))
    }
}

/// A stored `before`/`after` (unreadable JSON reads as none, as it always has).
pub(crate) fn parse_side(s: Option<String>) -> Option<serde_json::Value> {
    s.and_then(|t| serde_json::from_str(&t).ok())
}
