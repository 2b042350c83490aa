//! Alert state and history (SPEC §12): per (alert, subject) whether it is firing and the last
//! measured value; a firing/resolved history whose rows are also the notification outbox (a
//! notification that cannot be sent stays pending and is retried, never dropped).

use crate::{Result, StateStore};
use rusqlite::{params, OptionalExtension};

pub(crate) const SCHEMA: &str = "
create table if not exists alert_state (
    alert text not null,
    subject text not null,
    firing integer not null default 0,
    since text,
    value real,
    updated_at text not null,
    primary key (alert, subject)
) without rowid;
create table if not exists alert_history (
    id integer primary key,
    alert text not null,
    subject text not null,
    state text not null,
    at text not null,
    detail text not null,
    -- 0: nothing to send (no webhook, or no recovery wanted); 1: pending; 2: sent
    notify integer not null default 0,
    attempts integer not null default 0,
    next_at integer not null default 0,
    last_error text
);
create index if not exists alert_history_pending on alert_history (next_at) where notify = 1;
";

/// Where an alert stands for one subject.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertState {
    /// Firing now.
    pub firing: bool,
    /// Since when (RFC 3339), when firing.
    pub since: Option<String>,
    /// The last value measured (a rate in percent).
    pub value: Option<f64>,
}

/// Whether a history entry's notification was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Notify {
    /// Nothing to send: no webhook configured, or a recovery the alert does not send.
    None,
    /// Waiting for (another) attempt.
    Pending,
    /// The webhook accepted it.
    Sent,
}

impl Notify {
    fn from_i64(n: i64) -> Self {
        match n {
            1 => Self::Pending,
            2 => Self::Sent,
            _ => Self::None,
        }
    }
}

/// One firing or resolution.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AlertEvent {
    /// Entry number.
    pub id: i64,
    /// The alert's id.
    pub alert: String,
    /// What it is about: `model/destination`, `model`, or `stream/destination`.
    pub subject: String,
    /// `firing` or `resolved`.
    pub state: String,
    /// When (RFC 3339).
    pub at: String,
    /// Ids, counts and rates (never a record value).
    pub detail: serde_json::Value,
    /// Whether its notification was sent.
    pub notify: Notify,
    /// Attempts to send it so far.
    pub attempts: i64,
    /// The last sending error (redacted by the transport).
    pub last_error: Option<String>,
}

/// A firing subject.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Firing {
    /// The alert's id.
    pub alert: String,
    /// What it is about.
    pub subject: String,
    /// Since when (RFC 3339).
    pub since: String,
    /// The last value measured.
    pub value: Option<f64>,
}

fn event(r: &rusqlite::Row<'_>) -> rusqlite::Result<AlertEvent> {
    let detail: String = r.get(5)?;
    Ok(AlertEvent {
        id: r.get(0)?,
        alert: r.get(1)?,
        subject: r.get(2)?,
        state: r.get(3)?,
        at: r.get(4)?,
        detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
        notify: Notify::from_i64(r.get(6)?),
        attempts: r.get(7)?,
        last_error: r.get(8)?,
    })
}

/// A firing or a resolution to record.
#[derive(Debug, Clone, Copy)]
pub struct AlertChange<'a> {
    /// The alert's id.
    pub alert: &'a str,
    /// What it is about.
    pub subject: &'a str,
    /// Fired (`true`) or resolved.
    pub firing: bool,
    /// The value measured.
    pub value: Option<f64>,
    /// When (RFC 3339).
    pub at: &'a str,
    /// Ids, counts and rates for the history and the notification.
    pub detail: &'a serde_json::Value,
    /// Whether a notification is to be sent.
    pub notify: bool,
}

const EVENT_COLS: &str = "id, alert, subject, state, at, detail, notify, attempts, last_error";

impl StateStore {
    /// Where `alert` stands for `subject` (never evaluated: not firing, no value).
    pub fn alert_state(&self, alert: &str, subject: &str) -> Result<AlertState> {
        let row = self.wrap(
            self.sqlite()?
                .conn
                .query_row(
                    "select firing, since, value from alert_state where alert = ?1 and subject = ?2",
                    params![alert, subject],
                    |r| Ok(AlertState { firing: r.get::<_, i64>(0)? != 0, since: r.get(1)?, value: r.get(2)? }),
                )
                .optional(),
        )?;
        Ok(row.unwrap_or(AlertState { firing: false, since: None, value: None }))
    }

    /// Stores the last measured value without a change of state.
    pub fn set_alert_value(&self, alert: &str, subject: &str, value: Option<f64>, now: &str) -> Result<()> {
        self.wrap(self.sqlite()?.conn.execute(
            "insert into alert_state (alert, subject, firing, value, updated_at) values (?1, ?2, 0, ?3, ?4)
             on conflict (alert, subject) do update set value = coalesce(excluded.value, value),
             updated_at = excluded.updated_at",
            params![alert, subject, value, now],
        ))?;
        Ok(())
    }

    /// Records a firing or a resolution, with its history entry, in one transaction. Returns
    /// the entry's id.
    pub fn record_alert(&mut self, c: &AlertChange<'_>) -> Result<i64> {
        let AlertChange { alert, subject, firing, value, at: now, detail, notify } = *c;
        let path = self.location();
        let wrap = |source| crate::StateError::Db { path: path.clone(), source };
        let tx = self.sqlite_mut()?.conn.transaction().map_err(wrap)?;
        let r = (|| {
            tx.execute(
                "insert into alert_state (alert, subject, firing, since, value, updated_at)
                 values (?1, ?2, ?3, case when ?3 then ?5 end, ?4, ?5)
                 on conflict (alert, subject) do update set firing = excluded.firing, since = excluded.since,
                 value = coalesce(excluded.value, value), updated_at = excluded.updated_at",
                params![alert, subject, firing, value, now],
            )?;
            tx.execute(
                "insert into alert_history (alert, subject, state, at, detail, notify) values (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    alert,
                    subject,
                    if firing { "firing" } else { "resolved" },
                    now,
                    detail.to_string(),
                    if notify { 1 } else { 0 }
                ],
            )?;
            let id = tx.last_insert_rowid();
            tx.commit()?;
            Ok(id)
        })();
        r.map_err(wrap)
    }

    /// Subjects firing now, of alerts still configured or not (the caller filters), oldest first.
    pub fn firing_alerts(&self) -> Result<Vec<Firing>> {
        let mut st = self.wrap(self.sqlite()?.conn.prepare(
            "select alert, subject, coalesce(since, updated_at), value from alert_state where firing = 1
             order by since, alert, subject",
        ))?;
        let rows = self.wrap(st.query_map([], |r| {
            Ok(Firing { alert: r.get(0)?, subject: r.get(1)?, since: r.get(2)?, value: r.get(3)? })
        }))?;
        rows.map(|r| self.wrap(r)).collect()
    }

    /// The history, newest first.
    pub fn alert_history(&self, limit: usize) -> Result<Vec<AlertEvent>> {
        let sql = format!("select {EVENT_COLS} from alert_history order by id desc limit ?1");
        let mut st = self.wrap(self.sqlite()?.conn.prepare(&sql))?;
        let rows = self.wrap(st.query_map([limit as i64], event))?;
        rows.map(|r| self.wrap(r)).collect()
    }

    /// Notifications due for an attempt at `now_ms` (Unix milliseconds), oldest first.
    pub fn due_notifications(&self, now_ms: i64, limit: usize) -> Result<Vec<AlertEvent>> {
        let sql =
            format!("select {EVENT_COLS} from alert_history where notify = 1 and next_at <= ?1 order by id limit ?2");
        let mut st = self.wrap(self.sqlite()?.conn.prepare(&sql))?;
        let rows = self.wrap(st.query_map(params![now_ms, limit as i64], event))?;
        rows.map(|r| self.wrap(r)).collect()
    }

    /// Notifications not sent yet.
    pub fn pending_notifications(&self) -> Result<i64> {
        self.wrap(
            self.sqlite()?.conn.query_row("select count(*) from alert_history where notify = 1", [], |r| r.get(0)),
        )
    }

    /// Marks a notification sent.
    pub fn notification_sent(&self, id: i64) -> Result<()> {
        self.wrap(self.sqlite()?.conn.execute(
            "update alert_history set notify = 2, attempts = attempts + 1, last_error = null where id = ?1",
            [id],
        ))?;
        Ok(())
    }

    /// Records a failed attempt; the next one is due at `next_at_ms`.
    pub fn notification_failed(&self, id: i64, error: &str, next_at_ms: i64) -> Result<()> {
        self.wrap(self.sqlite()?.conn.execute(
            "update alert_history set attempts = attempts + 1, last_error = ?2, next_at = ?3 where id = ?1",
            params![id, error, next_at_ms],
        ))?;
        Ok(())
    }

    /// Marks a notification as having nothing to send (its alert or webhook was removed).
    pub fn notification_dropped(&self, id: i64, why: &str) -> Result<()> {
        self.wrap(
            self.sqlite()?
                .conn
                .execute("update alert_history set notify = 0, last_error = ?2 where id = ?1", params![id, why]),
        )?;
        Ok(())
    }
}
