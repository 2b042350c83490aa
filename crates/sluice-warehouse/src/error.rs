//! What went wrong talking to a warehouse, typed: the caller can tell a refused model from a
//! lost connection, read the database's SQLSTATE, and know whether trying again may help.

/// What went wrong talking to a warehouse.
#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    /// The warehouse cannot be reached or opened.
    #[error("cannot connect to warehouse {target}: {message}")]
    Connect {
        /// The file or host at fault.
        target: String,
        /// The driver's message.
        message: String,
    },
    /// The warehouse refused or failed a statement of the model.
    #[error("model SQL failed: {message}")]
    Sql {
        /// The warehouse's own message (with the position in the model's SQL when known).
        message: String,
        /// The SQLSTATE code the database gave, when it gave one (PostgreSQL).
        sqlstate: Option<String>,
        /// Whether the same statement may succeed later (lost connection, serialization
        /// failure, a busy or locked file, too little memory on the server).
        retryable: bool,
    },
    /// The model's SQL returns no columns.
    #[error("the model SQL returns no columns (is it a SELECT?)")]
    NoColumns,
    /// The model returns a column name twice.
    #[error("the model returns column `{column}` twice; give each column a distinct name (with AS)")]
    DuplicateColumn {
        /// The name returned twice.
        column: String,
    },
    /// No source has this id.
    #[error("unknown source `{source_id}`")]
    UnknownSource {
        /// The id asked for.
        source_id: String,
    },
    /// The source is an event source, not a warehouse.
    #[error("source `{source_id}` is an event source")]
    NotAWarehouse {
        /// The source's id.
        source_id: String,
    },
    /// Rows did not arrive in the promised order (would make the diff unsafe).
    #[error("rows arrived out of id order ({previous:?} then {current:?}); refusing to diff")]
    Order {
        /// The id before.
        previous: String,
        /// The id after.
        current: String,
    },
    /// A [`crate::Canceller`] stopped the work (a deadline passed, or the run was stopped).
    #[error("cancelled: the query was stopped on the warehouse")]
    Cancelled,
    /// The consumer of the rows stopped the scan, for the reason it gave.
    #[error("{0}")]
    Aborted(String),
    /// The model's snapshot in the warehouse cannot be used (docs/DIFF.md): its schema is
    /// missing or not writable, or another run moved it on.
    #[error("snapshot of model `{model}`: {message}")]
    Snapshot {
        /// The model.
        model: String,
        /// What is wrong, naming the grant or the generations.
        message: String,
    },
    /// A warehouse's answer could not be used (malformed, truncated, inconsistent, endless):
    /// treated as hostile, the work stops with what was wrong.
    #[error("unexpected answer from {target}: {message}")]
    Answer {
        /// The warehouse (kind and where).
        target: String,
        /// What was wrong with the answer.
        message: String,
    },
    /// The statement ran longer than the source's `statement_timeout_secs`; it was cancelled.
    #[error("the model's query ran longer than {secs} s (statement_timeout_secs) and was cancelled on the warehouse")]
    Timeout {
        /// The limit, in seconds.
        secs: u64,
    },
    /// The schema a `diff: warehouse` source keeps its snapshots in cannot be used.
    #[error("{0}")]
    SnapshotSchema(String),
}

impl WarehouseError {
    /// A refused or failed statement, classified by its SQLSTATE.
    pub fn sql(message: impl Into<String>, sqlstate: Option<&str>) -> Self {
        Self::Sql {
            message: message.into(),
            retryable: sqlstate.is_some_and(retryable_sqlstate),
            sqlstate: sqlstate.map(String::from),
        }
    }

    /// Whether trying again later may succeed (the warehouse was unreachable or busy), as
    /// opposed to a model or configuration that must change first.
    pub fn retryable(&self) -> bool {
        match self {
            Self::Connect { .. } => true,
            Self::Sql { retryable, .. } => *retryable,
            _ => false,
        }
    }

    /// The database's SQLSTATE code, when the error came with one.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            Self::Sql { sqlstate, .. } => sqlstate.as_deref(),
            _ => None,
        }
    }
}

/// SQLSTATE classes worth retrying: connection exceptions (08), transaction rollbacks such as
/// serialization failures and deadlocks (40), insufficient resources (53), operator
/// intervention other than a cancelled query (57, e.g. a server shutting down).
fn retryable_sqlstate(code: &str) -> bool {
    matches!(&code[..code.len().min(2)], "08" | "40" | "53") || (code.starts_with("57") && code != "57014")
}

#[cfg(test)]
mod tests {
    use super::WarehouseError;

    #[test]
    fn classifies_by_sqlstate() {
        let e = WarehouseError::sql("could not serialize access", Some("40001"));
        assert!(e.retryable() && e.sqlstate() == Some("40001"));
        assert!(!WarehouseError::sql("syntax error", Some("42601")).retryable());
        assert!(!WarehouseError::sql("canceling statement due to statement timeout", Some("57014")).retryable());
        assert!(WarehouseError::sql("the database system is shutting down", Some("57P03")).retryable());
        assert_eq!(WarehouseError::sql("x", None).to_string(), "model SQL failed: x");
        assert!(WarehouseError::DuplicateColumn { column: "a".into() }.to_string().contains("column `a` twice"));
    }
}
