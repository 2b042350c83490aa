//! API tokens: stored only as SHA-256 hashes; each has a name (who acts) and a role.

use crate::{Result, StateStore};
use base64::Engine;
use rusqlite::{params, OptionalExtension};
use sha2::{Digest, Sha256};

/// What a token may do (SPEC §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// May create, edit and disable consent categories and manage tokens.
    Owner,
    /// Read-only access to consent management.
    Member,
}

impl Role {
    /// From its name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "owner" => Some(Self::Owner),
            "member" => Some(Self::Member),
            _ => None,
        }
    }

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Member => "member",
        }
    }
}

/// Who a token authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// The token's name (the actor in the audit log).
    pub name: String,
    /// Its role.
    pub role: Role,
}

fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// A token as listed (never the token itself); also the control API's shape.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct TokenRow {
    /// Its number.
    pub id: i64,
    /// Who uses it.
    pub name: String,
    /// `owner` or `member`.
    pub role: String,
    /// When it was created.
    pub created_at: String,
    /// Whether it was disabled.
    pub disabled: bool,
}

impl StateStore {
    /// Every token, oldest first.
    pub fn tokens(&self) -> Result<Vec<TokenRow>> {
        let mut stmt =
            self.wrap(self.conn.prepare("select id, name, role, created_at, disabled from tokens order by id"))?;
        let rows = self.wrap(stmt.query_map([], |r| {
            Ok(TokenRow { id: r.get(0)?, name: r.get(1)?, role: r.get(2)?, created_at: r.get(3)?, disabled: r.get(4)? })
        }))?;
        rows.map(|r| self.wrap(r)).collect()
    }

    /// Disables a token; false if there is none with this number.
    pub fn disable_token(&self, id: i64) -> Result<bool> {
        Ok(self.wrap(self.conn.execute("update tokens set disabled = 1 where id = ?1", [id]))? > 0)
    }

    /// Creates a token and returns it (the only time it is shown).
    pub fn create_token(&self, name: &str, role: Role) -> Result<String> {
        let mut raw = [0u8; 32];
        getrandom::getrandom(&mut raw).expect("the operating system provides randomness");
        let token = format!("slc_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw));
        self.wrap(self.conn.execute(
            "insert into tokens (name, role, hash, created_at) values (?1, ?2, ?3, datetime('now'))",
            params![name, role.as_str(), hash(&token)],
        ))?;
        Ok(token)
    }

    /// Who a presented token belongs to, if it is valid.
    pub fn authenticate(&self, token: &str) -> Result<Option<TokenInfo>> {
        let row: Option<(String, String)> = self.wrap(
            self.conn
                .query_row("select name, role from tokens where hash = ?1 and disabled = 0", [hash(token)], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional(),
        )?;
        Ok(row.and_then(|(name, role)| Role::parse(&role).map(|role| TokenInfo { name, role })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stored_hashed_and_authenticate() {
        let d = tempfile::tempdir().unwrap();
        let s = StateStore::open(d.path()).unwrap();
        let t = s.create_token("alice", Role::Owner).unwrap();
        assert!(t.starts_with("slc_") && t.len() > 40);
        assert_eq!(s.authenticate(&t).unwrap(), Some(TokenInfo { name: "alice".into(), role: Role::Owner }));
        assert_eq!(s.authenticate("slc_nope").unwrap(), None);
        let raw = std::fs::read(s.path()).unwrap();
        assert!(!String::from_utf8_lossy(&raw).contains(&t[4..]), "only the hash is stored");
    }
}
