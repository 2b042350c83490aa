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
    /// the event carries ends up in one profile, within [`MAX_IDENTIFIERS`] (an identifier or a
    /// profile that would pass it is left unlinked and counted in `left_out`). Returns `None`
    /// when the event has none.
    pub fn resolve(conn: &Connection, user_ids: &[&str], anonymous_ids: &[&str]) -> Result<Option<Resolved>> {
        let keys: Vec<(String, bool, &str)> = user_ids
            .iter()
            .map(|u| (ident('u', u), true, *u))
            .chain(anonymous_ids.iter().map(|a| (ident('a', a), false, *a)))
            .collect();
        if keys.is_empty() {
            return Ok(None);
        }
        let mut found: Vec<i64> = Vec::new();
        let mut unlinked = Vec::new();
        for k in &keys {
            match Self::lookup(conn, &k.0)? {
                Some(p) if !found.contains(&p) => found.push(p),
                Some(_) => {}
                None => unlinked.push(k),
            }
        }
        found.sort();
        let (id, mut profile, mut changed) = match found.first() {
            Some(first) => (*first, Self::load(conn, *first)?, false),
            None => {
                exec(conn, "insert into profiles (data) values ('{}')", []).map_err(wrap(conn))?;
                (conn.last_insert_rowid(), Profile::default(), true)
            }
        };
        let mut left_out = 0;
        for other in found.iter().skip(1) {
            let p = Self::load(conn, *other)?;
            if count(&profile) + count(&p) > MAX_IDENTIFIERS {
                left_out += 1;
                continue;
            }
            profile.merge(p);
            exec(conn, "update identities set profile = ?1 where profile = ?2", params![id, other])
                .map_err(wrap(conn))?;
            exec(conn, "delete from profiles where id = ?1", [other]).map_err(wrap(conn))?;
            changed = true;
        }
        for (key, is_user, raw) in unlinked {
            if count(&profile) >= MAX_IDENTIFIERS {
                left_out += 1;
                continue;
            }
            if *is_user {
                profile.user_ids.insert(raw.to_string());
            } else {
                profile.anonymous_ids.insert(raw.to_string());
            }
            exec(conn, "insert into identities (ident, profile) values (?1, ?2)", params![key, id])
                .map_err(wrap(conn))?;
            changed = true;
        }
        Ok(Some(Resolved { id, profile, changed, left_out }))
    }
}

/// Most identifiers (userIds and anonymousIds) one profile links: each event of a profile loads
/// and saves it, so its size bounds the writer's work per event.
pub const MAX_IDENTIFIERS: usize = 1000;

fn count(p: &Profile) -> usize {
    p.user_ids.len() + p.anonymous_ids.len()
}

/// A resolved profile.
pub struct Resolved {
    /// Its row.
    pub id: i64,
    /// The profile, merged.
    pub profile: Profile,
    /// Whether resolving merged profiles or linked identifiers (it must be saved).
    pub changed: bool,
    /// Identifiers or profiles not linked because the profile is full.
    pub left_out: usize,
}

/// The profile JSON of SPEC §7 (`consent`, `consent_conflict`) with identifiers and traits.
pub fn profile_json(p: &Profile) -> serde_json::Value {
    serde_json::json!({
        "user_ids": p.user_ids,
        "anonymous_ids": p.anonymous_ids,
        "traits": p.traits,
        "consent": p.consent_traits(),
        "consent_conflict": p.consent_conflict(),
    })
}
