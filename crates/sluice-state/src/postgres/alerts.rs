//! Alert state and history on PostgreSQL (migration step 4; the history is also the notification
//! outbox).

use super::Postgres;
use crate::alerts::{AlertChange, AlertEvent, AlertState, Firing, Notify, EVENT_COLS};
use crate::Result;

fn event(r: &postgres::Row) -> AlertEvent {
    AlertEvent {
        id: r.get(0),
        alert: r.get(1),
        subject: r.get(2),
        state: r.get(3),
        at: r.get(4),
        detail: serde_json::from_str(r.get(5)).unwrap_or(serde_json::Value::Null),
        notify: Notify::from_i64(r.get(6)),
        attempts: r.get(7),
        last_error: r.get(8),
    }
}

fn limit(n: usize) -> i64 {
    n.min(i64::MAX as usize) as i64
}

impl Postgres {
    pub(crate) fn alert_state(&self, alert: &str, subject: &str) -> Result<Option<AlertState>> {
        let wrap = self.wrapper();
        let row = self
            .client()?
            .query_opt(
                "select firing, since, value from alert_state where alert = $1 and subject = $2",
                &[&alert, &subject],
            )
            .map_err(wrap)?;
        Ok(row.map(|r| AlertState { firing: r.get(0), since: r.get(1), value: r.get(2) }))
    }

    pub(crate) fn set_alert_value(&self, alert: &str, subject: &str, value: Option<f64>, now: &str) -> Result<()> {
        let wrap = self.wrapper();
        self.client()?
            .execute(
                "insert into alert_state (alert, subject, firing, value, updated_at) values ($1, $2, false, $3, $4)
                 on conflict (alert, subject) do update set value = coalesce(excluded.value, alert_state.value),
                 updated_at = excluded.updated_at",
                &[&alert, &subject, &value, &now],
            )
            .map_err(wrap)?;
        Ok(())
    }

    pub(crate) fn record_alert(&self, c: &AlertChange<'_>) -> Result<i64> {
        let AlertChange { alert, subject, firing, value, at: now, detail, notify } = *c;
        let wrap = self.wrapper();
        let mut client = self.client()?;
        let mut tx = client.transaction().map_err(&wrap)?;
        tx.execute(
            "insert into alert_state (alert, subject, firing, since, value, updated_at)
             values ($1, $2, $3, case when $3 then $5 end, $4, $5)
             on conflict (alert, subject) do update set firing = excluded.firing, since = excluded.since,
             value = coalesce(excluded.value, alert_state.value), updated_at = excluded.updated_at",
            &[&alert, &subject, &firing, &value, &now],
        )
        .map_err(&wrap)?;
        let id: i64 = tx
            .query_one(
                "insert into alert_history (alert, subject, state, at, detail, notify)
                 values ($1, $2, $3, $4, $5, $6) returning id",
                &[
                    &alert,
                    &subject,
                    &if firing { "firing" } else { "resolved" },
                    &now,
                    &detail.to_string(),
                    &if notify { 1i64 } else { 0 },
                ],
            )
            .map_err(&wrap)?
            .get(0);
        tx.commit().map_err(&wrap)?;
        Ok(id)
    }

    pub(crate) fn firing_alerts(&self) -> Result<Vec<Firing>> {
        let wrap = self.wrapper();
        let rows = self
            .client()?
            .query(
                "select alert, subject, coalesce(since, updated_at), value from alert_state where firing
                 order by since nulls first, alert, subject",
                &[],
            )
            .map_err(wrap)?;
        Ok(rows
            .iter()
            .map(|r| Firing { alert: r.get(0), subject: r.get(1), since: r.get(2), value: r.get(3) })
            .collect())
    }

    pub(crate) fn alert_history(&self, n: usize) -> Result<Vec<AlertEvent>> {
        let wrap = self.wrapper();
        let sql = format!("select {EVENT_COLS} from alert_history order by id desc limit $1");
        let rows = self.client()?.query(&sql, &[&limit(n)]).map_err(wrap)?;
        Ok(rows.iter().map(event).collect())
    }

    pub(crate) fn due_notifications(&self, now_ms: i64, n: usize) -> Result<Vec<AlertEvent>> {
        let wrap = self.wrapper();
        let sql =
            format!("select {EVENT_COLS} from alert_history where notify = 1 and next_at <= $1 order by id limit $2");
        let rows = self.client()?.query(&sql, &[&now_ms, &limit(n)]).map_err(wrap)?;
        Ok(rows.iter().map(event).collect())
    }

    pub(crate) fn pending_notifications(&self) -> Result<i64> {
        let wrap = self.wrapper();
        Ok(self.client()?.query_one("select count(*) from alert_history where notify = 1", &[]).map_err(wrap)?.get(0))
    }

    pub(crate) fn notification_sent(&self, id: i64) -> Result<()> {
        let wrap = self.wrapper();
        self.client()?
            .execute(
                "update alert_history set notify = 2, attempts = attempts + 1, last_error = null where id = $1",
                &[&id],
            )
            .map_err(wrap)?;
        Ok(())
    }

    pub(crate) fn notification_failed(&self, id: i64, error: &str, next_at_ms: i64) -> Result<()> {
        let wrap = self.wrapper();
        self.client()?
            .execute(
                "update alert_history set attempts = attempts + 1, last_error = $2, next_at = $3 where id = $1",
                &[&id, &error, &next_at_ms],
            )
            .map_err(wrap)?;
        Ok(())
    }

    pub(crate) fn notification_dropped(&self, id: i64, why: &str) -> Result<()> {
        let wrap = self.wrapper();
        self.client()?
            .execute("update alert_history set notify = 0, last_error = $2 where id = $1", &[&id, &why])
            .map_err(wrap)?;
        Ok(())
    }
}
