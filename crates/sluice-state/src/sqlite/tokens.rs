//! API tokens on SQLite (only their SHA-256 hashes).

use super::Sqlite;
use crate::{Result, Role, TokenRow};
use rusqlite::{params, OptionalExtension};

impl Sqlite {
    pub(crate) fn tokens(&self) -> Result<Vec<TokenRow>> {
        let mut stmt =
            self.wrap(self.conn.prepare("select id, name, role, created_at, disabled from tokens order by id"))?;
        let rows = self.wrap(stmt.query_map([], |r| {
            Ok(TokenRow { id: r.get(0)?, name: r.get(1)?, role: r.get(2)?, created_at: r.get(3)?, disabled: r.get(4)? })
        }))?;
        rows.map(|r| self.wrap(r)).collect()
    }

    pub(crate) fn disable_token(&self, id: i64) -> Result<bool> {
        Ok(self.wrap(self.conn.execute("update tokens set disabled = 1 where id = ?1", [id]))? > 0)
    }

    pub(crate) fn insert_token(&self, name: &str, role: Role, hash: &str) -> Result<()> {
        self.wrap(self.conn.execute(
            "insert into tokens (name, role, hash, created_at) values (?1, ?2, ?3, datetime('now'))",
            params![name, role.as_str(), hash],
        ))?;
        Ok(())
    }

    pub(crate) fn token_by_hash(&self, hash: &str) -> Result<Option<(String, String)>> {
        self.wrap(
            self.conn
                .query_row("select name, role from tokens where hash = ?1 and disabled = 0", [hash], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional(),
        )
    }
}
