//! Alert state and history on SQLite (the history is also the notification outbox).

use super::Sqlite;
use crate::alerts::{AlertChange, AlertEvent, AlertState, Firing, Notify, EVENT_COLS};
use crate::Result;
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

impl Sqlite {
    pub(crate) fn alert_state(&self, alert: &str, subject: &str) -> Result<Option<AlertState>> {
        self.wrap(
            self.conn
                .query_row(
                    "select firing, since, value from alert_state where alert = ?1 and subject = ?2",
                    params![alert, subject],
                    |r| Ok(AlertState { firing: r.get::<_, i64>(0)? != 0, since: r.get(1)?, value: r.get(2)? }),
                )
                .optional(),
        )
    }

    pub(crate) fn set_alert_value(&self, alert: &str, subject: &str, value: Option<f64>, now: &str) -> Result<()> {
        self.wrap(self.conn.execute(
            "insert into alert_state (alert, subject, firing, value, updated_at) values (?1, ?2, 0, ?3, ?4)
             on conflict (alert, subject) do update set value = coalesce(excluded.value, value),
             updated_at = excluded.updated_at",
            params![alert, subject, value, now],
        ))?;
        Ok(())
    }

    pub(crate) fn record_alert(&mut self, c: &AlertChange<'_>) -> Result<i64> {
        let AlertChange { alert, subject, firing, value, at: now, detail, notify } = *c;
        let wrap = self.wrapper();
        let tx = self.conn.transaction().map_err(&wrap)?;
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

    pub(crate) fn firing_alerts(&self) -> Result<Vec<Firing>> {
        let mut st = self.wrap(self.conn.prepare(
            "select alert, subject, coalesce(since, updated_at), value from alert_state where firing = 1
             order by since, alert, subject",
        ))?;
        let rows = self.wrap(st.query_map([], |r| {
            Ok(Firing { alert: r.get(0)?, subject: r.get(1)?, since: r.get(2)?, value: r.get(3)? })
        }))?;
        rows.map(|r| self.wrap(r)).collect()
    }

    pub(crate) fn alert_history(&self, limit: usize) -> Result<Vec<AlertEvent>> {
        let sql = format!("select {EVENT_COLS} from alert_history order by id desc limit ?1");
        let mut st = self.wrap(self.conn.prepare(&sql))?;
        let rows = self.wrap(st.query_map([limit.min(i64::MAX as usize) as i64], event))?;
        rows.map(|r| self.wrap(r)).collect()
    }

    pub(crate) fn due_notifications(&self, now_ms: i64, limit: usize) -> Result<Vec<AlertEvent>> {
        let sql =
            format!("select {EVENT_COLS} from alert_history where notify = 1 and next_at <= ?1 order by id limit ?2");
        let mut st = self.wrap(self.conn.prepare(&sql))?;
        let rows = self.wrap(st.query_map(params![now_ms, limit.min(i64::MAX as usize) as i64], event))?;
        rows.map(|r| self.wrap(r)).collect()
    }

    pub(crate) fn pending_notifications(&self) -> Result<i64> {
        self.wrap(self.conn.query_row("select count(*) from alert_history where notify = 1", [], |r| r.get(0)))
    }

    pub(crate) fn notification_sent(&self, id: i64) -> Result<()> {
        self.wrap(self.conn.execute(
            "update alert_history set notify = 2, attempts = attempts + 1, last_error = null where id = ?1",
            [id],
        ))?;
        Ok(())
    }

    pub(crate) fn notification_failed(&self, id: i64, error: &str, next_at_ms: i64) -> Result<()> {
        self.wrap(self.conn.execute(
            "update alert_history set attempts = attempts + 1, last_error = ?2, next_at = ?3 where id = ?1",
            params![id, error, next_at_ms],
        ))?;
        Ok(())
    }

    pub(crate) fn notification_dropped(&self, id: i64, why: &str) -> Result<()> {
        self.wrap(
            self.conn.execute("update alert_history set notify = 0, last_error = ?2 where id = ?1", params![id, why]),
        )?;
        Ok(())
    }
}
