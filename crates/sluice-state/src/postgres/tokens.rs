//! API tokens on PostgreSQL (only their SHA-256 hashes).

use super::Postgres;
use crate::{Result, Role, TokenRow};

impl Postgres {
    pub(crate) fn tokens(&self) -> Result<Vec<TokenRow>> {
        let wrap = self.wrapper();
        let rows = self
            .client()?
            .query("select id, name, role, created_at, disabled from tokens order by id", &[])
            .map_err(wrap)?;
        Ok(rows
            .iter()
            .map(|r| TokenRow {
                id: r.get(0),
                name: r.get(1),
                role: r.get(2),
                created_at: r.get(3),
                disabled: r.get(4),
            })
            .collect())
    }

    pub(crate) fn disable_token(&self, id: i64) -> Result<bool> {
        let wrap = self.wrapper();
        Ok(self.client()?.execute("update tokens set disabled = true where id = $1", &[&id]).map_err(wrap)? > 0)
    }

    pub(crate) fn insert_token(&self, name: &str, role: Role, hash: &str) -> Result<()> {
        let wrap = self.wrapper();
        self.client()?
            .execute(
                "insert into tokens (name, role, hash, created_at)
                 values ($1, $2, $3, to_char(now() at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS'))",
                &[&name, &role.as_str(), &hash],
            )
            .map_err(wrap)?;
        Ok(())
    }

    pub(crate) fn token_by_hash(&self, hash: &str) -> Result<Option<(String, String)>> {
        let wrap = self.wrapper();
        let row = self
            .client()?
            .query_opt("select name, role from tokens where hash = $1 and not disabled", &[&hash])
            .map_err(wrap)?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }
}
