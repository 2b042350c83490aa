//! Identity resolution: identifiers -> profile, merging profiles when an event links two.

use super::{exec, query_row, wrap, Result};
use rusqlite::{params, Connection, OptionalExtension};
use sluice_core::profiles::Profile;

/// Profiles, read and written inside the writer's transaction.
pub struct ProfileStore;

/// The tables identity resolution works on, in the caller's transaction: `stream.db` here, the
/// shared PostgreSQL tables of the bus (`bus::pg`). One algorithm ([`resolve_in`], [`ensure_in`])
/// for both.
pub(crate) trait ProfileTables {
    /// The tables' error.
    type Error;
    /// The profile an identifier (`u:ID` or `a:ID`) belongs to.
    fn lookup(&mut self, key: &str) -> std::result::Result<Option<i64>, Self::Error>;
    /// A profile, read for an update (PostgreSQL locks its row until the transaction ends).
    fn load(&mut self, id: i64) -> std::result::Result<Profile, Self::Error>;
    /// A new profile; its id.
    fn create(&mut self, p: &Profile) -> std::result::Result<i64, Self::Error>;
    /// Links an identifier to a profile.
    fn link(&mut self, key: &str, profile: i64) -> std::result::Result<(), Self::Error>;
    /// Moves `other`'s identifiers to `into` and removes `other` (a merge).
    fn absorb(&mut self, into: i64, other: i64) -> std::result::Result<(), Self::Error>;
}

/// Identifier key of a `userId` (`u`) or an `anonymousId` (`a`).
pub(crate) fn ident(kind: char, id: &str) -> String {
    format!("{kind}:{id}")
}

/// Makes sure one identifier has a profile (created empty when new).
pub(crate) fn ensure_in<T: ProfileTables>(
    t: &mut T,
    user: Option<&str>,
    anon: Option<&str>,
) -> std::result::Result<(), T::Error> {
    let key = match (user, anon) {
        (Some(u), _) => ident('u', u),
        (None, Some(a)) => ident('a', a),
        (None, None) => return Ok(()),
    };
    if t.lookup(&key)?.is_none() {
        let p = Profile {
            user_ids: user.map(|u| u.to_string()).into_iter().collect(),
            anonymous_ids: anon.filter(|_| user.is_none()).map(|a| a.to_string()).into_iter().collect(),
            ..Default::default()
        };
        let id = t.create(&p)?;
        t.link(&key, id)?;
    }
    Ok(())
}

/// The profile of an event's identifiers, creating or merging as needed: every identifier the
/// event carries ends up in one profile, within [`MAX_IDENTIFIERS`] (an identifier or a profile
/// that would pass it is left unlinked and counted in `left_out`). Returns `None` when the event
/// has none. The surviving profile of a merge is the oldest (lowest id).
pub(crate) fn resolve_in<T: ProfileTables>(
    t: &mut T,
    user_ids: &[&str],
    anonymous_ids: &[&str],
) -> std::result::Result<Option<Resolved>, T::Error> {
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
        match t.lookup(&k.0)? {
            Some(p) if !found.contains(&p) => found.push(p),
            Some(_) => {}
            None => unlinked.push(k),
        }
    }
    found.sort();
    let (id, mut profile, mut changed) = match found.first() {
        Some(first) => (*first, t.load(*first)?, false),
        None => (t.create(&Profile::default())?, Profile::default(), true),
    };
    let mut left_out = 0;
    for other in found.iter().skip(1) {
        let p = t.load(*other)?;
        if count(&profile) + count(&p) > MAX_IDENTIFIERS {
            left_out += 1;
            continue;
        }
        profile.merge(p);
        t.absorb(id, *other)?;
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
        t.link(key, id)?;
        changed = true;
    }
    Ok(Some(Resolved { id, profile, changed, left_out }))
}

/// `stream.db`'s tables.
struct Sqlite<'c>(&'c Connection);

impl ProfileTables for Sqlite<'_> {
    type Error = super::StoreError;

    fn lookup(&mut self, key: &str) -> Result<Option<i64>> {
        query_row(self.0, "select profile from identities where ident = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(wrap(self.0))
    }

    fn load(&mut self, id: i64) -> Result<Profile> {
        let data: Option<String> = query_row(self.0, "select data from profiles where id = ?1", [id], |r| r.get(0))
            .optional()
            .map_err(wrap(self.0))?;
        Ok(data.and_then(|d| serde_json::from_str(&d).ok()).unwrap_or_default())
    }

    fn create(&mut self, p: &Profile) -> Result<i64> {
        exec(self.0, "insert into profiles (data) values (?1)", [serde_json::to_string(p).expect("serializes")])
            .map_err(wrap(self.0))?;
        Ok(self.0.last_insert_rowid())
    }

    fn link(&mut self, key: &str, profile: i64) -> Result<()> {
        exec(self.0, "insert into identities (ident, profile) values (?1, ?2)", params![key, profile])
            .map_err(wrap(self.0))?;
        Ok(())
    }

    fn absorb(&mut self, into: i64, other: i64) -> Result<()> {
        exec(self.0, "update identities set profile = ?1 where profile = ?2", params![into, other])
            .map_err(wrap(self.0))?;
        exec(self.0, "delete from profiles where id = ?1", [other]).map_err(wrap(self.0))?;
        Ok(())
    }
}

impl ProfileStore {
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

    /// Whether `id` was seen as a `userId`.
    pub fn is_user(conn: &Connection, id: &str) -> Result<bool> {
        Ok(Sqlite(conn).lookup(&ident('u', id))?.is_some())
    }

    /// Makes sure one identifier has a profile (created empty when new).
    pub fn ensure(conn: &Connection, user: Option<&str>, anon: Option<&str>) -> Result<()> {
        ensure_in(&mut Sqlite(conn), user, anon)
    }

    /// [`resolve_in`] on `stream.db`.
    pub fn resolve(conn: &Connection, user_ids: &[&str], anonymous_ids: &[&str]) -> Result<Option<Resolved>> {
        resolve_in(&mut Sqlite(conn), user_ids, anonymous_ids)
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
