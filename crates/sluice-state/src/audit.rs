//! The append-only audit log of configuration changes: who, when, what, before and after.
//! Triggers in the schema refuse any update or delete of its rows.

use crate::{Result, StateStore};
use rusqlite::params;
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
        let path = self.path.display().to_string();
        let wrap = |source| crate::StateError::Db { path: path.clone(), source };
        let tx = self.conn.transaction().map_err(wrap)?;
        for e in entries {
            tx.execute(
                "insert into audit_log (at, actor, action, kind, entity, before, after) values (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    e.at,
                    e.actor,
                    e.action,
                    e.kind,
                    e.entity,
                    e.before.as_ref().map(|v| v.to_string()),
                    e.after.as_ref().map(|v| v.to_string())
                ],
            )
            .map_err(wrap)?;
        }
        tx.commit().map_err(wrap)
    }

    /// The newest `limit` entries, newest first.
    pub fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>> {
        let mut stmt = self.wrap(self.conn.prepare(
            "select id, at, actor, action, kind, entity, before, after from audit_log order by id desc limit ?1",
        ))?;
        let parse = |s: Option<String>| s.and_then(|t| serde_json::from_str(&t).ok());
        let rows = self.wrap(stmt.query_map([limit as i64], |r| {
            Ok(AuditEntry {
                id: r.get(0)?,
                at: r.get(1)?,
                actor: r.get(2)?,
                action: r.get(3)?,
                kind: r.get(4)?,
                entity: r.get(5)?,
                before: parse(r.get(6)?),
                after: parse(r.get(7)?),
            })
        }))?;
        rows.map(|r| self.wrap(r)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_only() {
        let d = tempfile::tempdir().unwrap();
        let mut s = StateStore::open(d.path()).unwrap();
        let e = AuditEntry {
            id: 0,
            at: "t".into(),
            actor: "cli:me".into(),
            action: "create".into(),
            kind: "destination".into(),
            entity: "crm".into(),
            before: None,
            after: Some(serde_json::json!({"id": "crm"})),
        };
        s.append_audit(std::slice::from_ref(&e)).unwrap();
        let log = s.audit_log(10).unwrap();
        assert_eq!((log.len(), log[0].entity.as_str(), log[0].after.clone()), (1, "crm", e.after));
        assert!(s
            .conn
            .execute("update audit_log set actor = 'x'", [])
            .unwrap_err()
            .to_string()
            .contains("append-only"));
        assert!(s.conn.execute("delete from audit_log", []).unwrap_err().to_string().contains("append-only"));
    }
}
