//! API tokens: stored only as SHA-256 hashes; each has a name (who acts) and a role.

use crate::{on, Result, StateStore};
use base64::Engine;
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

pub(crate) fn hash(token: &str) -> String {
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
        on!(self, b => b.tokens())
    }

    /// Disables a token; false if there is none with this number.
    pub fn disable_token(&self, id: i64) -> Result<bool> {
        on!(self, b => b.disable_token(id))
    }

    /// Creates a token and returns it (the only time it is shown; only its hash is stored).
    pub fn create_token(&self, name: &str, role: Role) -> Result<String> {
        let mut raw = [0u8; 32];
        getrandom::getrandom(&mut raw).expect("the operating system provides randomness");
        let token = format!("slc_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw));
        on!(self, b => b.insert_token(name, role, &hash(&token)))?;
        Ok(token)
    }

    /// Who a presented token belongs to, if it is valid.
    pub fn authenticate(&self, token: &str) -> Result<Option<TokenInfo>> {
        let row = on!(self, b => b.token_by_hash(&hash(token)))?;
        Ok(row.and_then(|(name, role)| Role::parse(&role).map(|role| TokenInfo { name, role })))
    }
}
