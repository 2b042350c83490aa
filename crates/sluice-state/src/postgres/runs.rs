//! Runs and usage on PostgreSQL.

use super::Postgres;
use crate::lease::Scope;
use crate::runs::INTERRUPTED;
use crate::{parse_json, Lease, Result, RunRow, RunStatus, UsageRow};

impl Postgres {
    pub(crate) fn start_run(&self, model: &str, started_at: &str, fence: Option<&Lease>) -> Result<i64> {
        let wrap = self.wrapper();
        let mut c = self.client()?;
        let mut tx = c.transaction().map_err(&wrap)?;
        if let Some(lease) = fence {
            super::leases::check_fence(&mut tx, lease, Scope::Model, &wrap)?;
        }
        tx.execute(
            "update runs set status = 'interrupted', finished_at = $2,
                 report = json_build_object('run_id', id, 'model', model, 'status', 'interrupted',
                     'started_at', started_at, 'finished_at', $2::text, 'error', $3::text)::text
             where model = $1 and status = 'running'",
            &[&model, &started_at, &INTERRUPTED],
        )
        .map_err(&wrap)?;
        let id: i64 = tx
            .query_one(
                "insert into runs (model, started_at, status) values ($1, $2, 'running') returning id",
                &[&model, &started_at],
            )
            .map_err(&wrap)?
            .get(0);
        tx.commit().map_err(&wrap)?;
        Ok(id)
    }

    pub(crate) fn finish_run(
        &self,
        id: i64,
        finished_at: &str,
        status: RunStatus,
        report: &serde_json::Value,
        fence: Option<&Lease>,
    ) -> Result<()> {
        let wrap = self.wrapper();
        let mut c = self.client()?;
        let mut tx = c.transaction().map_err(&wrap)?;
        if let Some(lease) = fence {
            super::leases::check_fence(&mut tx, lease, Scope::Run(id), &wrap)?;
        }
        tx.execute(
            "update runs set finished_at = $2, status = $3, report = $4 where id = $1",
            &[&id, &finished_at, &status.as_str(), &report.to_string()],
        )
        .map_err(&wrap)?;
        tx.commit().map_err(&wrap)
    }

    pub(crate) fn runs(&self, model: Option<&str>, limit: usize) -> Result<Vec<RunRow>> {
        let wrap = self.wrapper();
        let rows = self
            .client()?
            .query(
                "select id, model, started_at, finished_at, status, report from runs
                 where $1::text is null or model = $1 order by id desc limit $2",
                &[&model, &(limit.min(i64::MAX as usize) as i64)],
            )
            .map_err(wrap)?;
        rows.iter()
            .map(|r| {
                Ok(RunRow {
                    id: r.get(0),
                    model: r.get(1),
                    started_at: r.get(2),
                    finished_at: r.get(3),
                    status: RunStatus::parse(r.get(4)),
                    report: r.get::<_, Option<&str>>(5).map(parse_json).transpose()?,
                })
            })
            .collect()
    }

    pub(crate) fn run(&self, id: i64) -> Result<Option<RunRow>> {
        let wrap = self.wrapper();
        let row = self
            .client()?
            .query_opt("select model, started_at, finished_at, status from runs where id = $1", &[&id])
            .map_err(wrap)?;
        Ok(row.map(|r| RunRow {
            id,
            model: r.get(0),
            started_at: r.get(1),
            finished_at: r.get(2),
            status: RunStatus::parse(r.get(3)),
            report: None,
        }))
    }

    pub(crate) fn add_usage(&self, month: &str, destination: &str, records: i64) -> Result<()> {
        let wrap = self.wrapper();
        self.client()?
            .execute(
                "insert into usage (month, destination, records) values ($1, $2, $3)
                 on conflict (month, destination) do update set records = usage.records + excluded.records",
                &[&month, &destination, &records],
            )
            .map_err(wrap)?;
        Ok(())
    }

    pub(crate) fn usage(&self) -> Result<Vec<UsageRow>> {
        let wrap = self.wrapper();
        let rows = self
            .client()?
            .query("select month, destination, records from usage order by month desc, destination", &[])
            .map_err(wrap)?;
        Ok(rows.iter().map(|r| UsageRow { month: r.get(0), destination: r.get(1), records: r.get(2) }).collect())
    }
}
