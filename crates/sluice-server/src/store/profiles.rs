//! Identity resolution: identifiers -> profile, merging profiles when an event links two.

use super::{exec, query_row, wrap, Result};
use rusqlite::{params, Connection, OptionalExtension};
use sluice_core::profiles::Profile;

/// Profiles, read and written inside the writer's transaction.
pub struct ProfileStore;

fn ident(kind: char, id: &str) -> String {
    format!("{kind}:{id}")
}

impl ProfileStore {
    fn load(conn: &Connection, id: i64) -> Result<Profile> {
        let data: Option<String> = query_row(conn, "select data from profiles where id = ?1", [id], |r| r.get(0))
            .optional()
            .map_err(wrap(conn))?;
        Ok(data.and_then(|d| serde_json::from_str(&d).ok()).unwrap_or_default())
    }

    /// Saves a profile.
    pub fn save(conn: &Connection, id: i64, p: &Profile) -> Result<()> {
        exec(
            conn,
            "insert into profiles (id, data) values (?1, ?2) on conflict (id) do update set data = excluded.data",
            params![id, serde_json::to_string(p).expect("profile serializes")],
        )
        .map_err(wrap(conn))?;
        Ok(())
    }

    fn lookup(conn: &Connection, key: &str) -> Result<Option<i64>> {
        query_row(conn, "select profile from identities where ident = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(wrap(conn))
    }

    /// Whether `id` was seen as a `userId`.
    pub fn is_user(conn: &Connection, id: &str) -> Result<bool> {
        Ok(Self::lookup(conn, &ident('u', id))?.is_some())
    }

    /// Makes sure one identifier has a profile (created empty when new).
    pub fn ensure(conn: &Connection, user: Option<&str>, anon: Option<&str>) -> Result<()> {
        let key = match (user, anon) {
            (Some(u), _) => ident('u', u),
            (None, Some(a)) => ident('a', a),
            (None, None) => return Ok(()),
        };
        if Self::lookup(conn, &key)?.is_none() {
            let p = Profile {
                user_ids: user.map(|u| u.to_string()).into_iter().collect(),
                anonymous_ids: anon.filter(|_| user.is_none()).map(|a| a.to_string()).into_iter().collect(),
                ..Default::default()
            };
            exec(conn, "insert into profiles (data) values (?1)", [serde_json::to_string(&p).expect("serializes")])
                .map_err(wrap(conn))?;
            let id = conn.last_insert_rowid();
            exec(conn, "insert into identities (ident, profile) values (?1, ?2)", params![key, id])
                .map_err(wrap(conn))?;
        }
        Ok(())
    }

    /// The profile of an event's identifiers, creating or merging as needed: every identifier
    /// the event carries ends up in one profile. Returns `None` when the event has none.
    pub fn resolve(conn: &Connection, user_ids: &[&str], anonymous_ids: &[&str]) -> Result<Option<(i64, Profile)>> {
        let keys: Vec<String> =
            user_ids.iter().map(|u| ident('u', u)).chain(anonymous_ids.iter().map(|a| ident('a', a))).collect();
        if keys.is_empty() {
            return Ok(None);
        }
        let mut found: Vec<i64> = Vec::new();
        for k in &keys {
            if let Some(p) = Self::lookup(conn, k)? {
                if !found.contains(&p) {
                    found.push(p);
                }
            }
        }
        found.sort();
        let (id, mut profile) = match found.first() {
            Some(first) => (*first, Self::load(conn, *first)?),
            None => {
                exec(conn, "insert into profiles (data) values ('{}')", []).map_err(wrap(conn))?;
                (conn.last_insert_rowid(), Profile::default())
            }
        };
        for other in found.iter().skip(1) {
            let p = Self::load(conn, *other)?;
            profile.merge(p);
            exec(conn, "update identities set profile = ?1 where profile = ?2", params![id, other])
                .map_err(wrap(conn))?;
            exec(conn, "delete from profiles where id = ?1", [other]).map_err(wrap(conn))?;
        }
        profile.user_ids.extend(user_ids.iter().map(|s| s.to_string()));
        profile.anonymous_ids.extend(anonymous_ids.iter().map(|s| s.to_string()));
        for k in &keys {
            exec(conn,
                "insert into identities (ident, profile) values (?1, ?2) on conflict (ident) do update set profile = excluded.profile
                 where profile <> excluded.profile",
                params![k, id],
            )
            .map_err(wrap(conn))?;
        }
        Ok(Some((id, profile)))
    }
}
