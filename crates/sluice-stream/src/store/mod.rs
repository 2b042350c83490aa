//! The streaming state: the durable event log, per-destination outboxes, profiles, the
//! debugger's decisions and per-minute delivery statistics, in `stream.db` (SQLite, WAL).

pub mod profiles;
pub mod retention;

pub use profiles::{profile_json, ProfileStore};

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// A failure of the streaming store.
#[derive(Debug, thiserror::Error)]
#[error("stream store {path}: {source}")]
pub struct StoreError {
    /// The database file.
    pub path: String,
    /// The SQLite error.
    #[source]
    pub source: rusqlite::Error,
}

/// Result of the streaming store.
pub type Result<T> = std::result::Result<T, StoreError>;

/// Opens a connection to `stream.db` in `dir`, creating the schema.
pub fn open(dir: &Path) -> Result<Connection> {
    let path = db_path(dir);
    let wrap = |source| StoreError { path: path.display().to_string(), source };
    let io = |e: std::io::Error| StoreError {
        path: path.display().to_string(),
        source: rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
            Some(e.to_string()),
        ),
    };
    sluice_state::files::private_dir(dir).map_err(io)?;
    let conn = Connection::open(&path).map_err(wrap)?;
    sluice_state::files::tighten_db(&path).map_err(io)?;
    conn.execute_batch("pragma journal_mode = wal; pragma synchronous = normal; pragma busy_timeout = 10000;")
        .map_err(wrap)?;
    conn.execute_batch(include_str!("schema.sql")).map_err(wrap)?;
    Ok(conn)
}

/// The database file in a state folder.
pub fn db_path(dir: &Path) -> PathBuf {
    dir.join("stream.db")
}

/// Wraps SQLite errors with the file name.
pub fn wrap(conn: &Connection) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |source| StoreError { path: conn.path().unwrap_or("stream.db").to_string(), source }
}

/// Executes a statement through the connection's statement cache (no re-parsing per call).
pub fn exec(conn: &Connection, sql: &str, p: impl rusqlite::Params) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(p)
}

/// Queries one row through the statement cache.
pub fn query_row<T>(
    conn: &Connection,
    sql: &str,
    p: impl rusqlite::Params,
    f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    conn.prepare_cached(sql)?.query_row(p, f)
}

/// Records a messageId of a source; false if it was already seen within the de-duplication
/// window (this generation or the previous one).
pub fn remember(conn: &Connection, source: &str, message_id: &str) -> rusqlite::Result<bool> {
    if exec(conn, "insert or ignore into dedupe (source, message_id) values (?1, ?2)", params![source, message_id])?
        == 0
    {
        return Ok(false);
    }
    Ok(!query_row(
        conn,
        "select exists(select 1 from dedupe_prev where source = ?1 and message_id = ?2)",
        params![source, message_id],
        |r| r.get::<_, bool>(0),
    )?)
}

/// Whether a messageId of a source is within the de-duplication window.
pub fn seen(conn: &Connection, source: &str, message_id: &str) -> rusqlite::Result<bool> {
    query_row(
        conn,
        "select exists(select 1 from dedupe where source = ?1 and message_id = ?2)
             or exists(select 1 from dedupe_prev where source = ?1 and message_id = ?2)",
        params![source, message_id],
        |r| r.get(0),
    )
}

/// One event as the debugger shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DebugEvent {
    /// Arrival order.
    pub seq: i64,
    /// When it was received.
    pub received_at: String,
    /// The event as stored (normalized).
    pub event: Value,
    /// Destination id -> decision and reason.
    pub decisions: Value,
    /// Validation warnings (consent values that were not booleans, …).
    pub warnings: Value,
}

const DEBUG_COLUMNS: &str = "select seq, received_at, body, decisions, coalesce(warnings, '[]') from events";

/// Most bytes of stored events one debugger answer holds; older events beyond it are left out
/// (the answer says so), so no request can make the server load the whole log.
pub const DEBUG_BYTES: usize = 4 * 1024 * 1024;

/// Longest stored body of an invalid event; the rest is cut (the reason and size are kept).
pub const INVALID_BODY_BYTES: usize = 4 * 1024;

/// Runs a query over the event log that selects [`DEBUG_COLUMNS`], stopping once the bodies
/// read exceed `budget` bytes. Returns the events and whether some were left out.
fn debug_events(
    conn: &Connection,
    filter: &str,
    p: impl rusqlite::Params,
    budget: usize,
) -> Result<(Vec<DebugEvent>, bool)> {
    let mut stmt = conn.prepare_cached(&format!("{DEBUG_COLUMNS} {filter}")).map_err(wrap(conn))?;
    let mut rows = stmt.query(p).map_err(wrap(conn))?;
    let (mut out, mut used) = (Vec::new(), 0usize);
    let parse = |s: String| serde_json::from_str(&s).unwrap_or(Value::Null);
    while let Some(r) = rows.next().map_err(wrap(conn))? {
        let body: String = r.get(2).map_err(wrap(conn))?;
        let decisions: String = r.get(3).map_err(wrap(conn))?;
        used += body.len() + decisions.len();
        if used > budget && !out.is_empty() {
            return Ok((out, true));
        }
        out.push(DebugEvent {
            seq: r.get(0).map_err(wrap(conn))?,
            received_at: r.get(1).map_err(wrap(conn))?,
            event: parse(body),
            decisions: parse(decisions),
            warnings: parse(r.get(4).map_err(wrap(conn))?),
        });
    }
    Ok((out, false))
}

/// The last `limit` events of `source`, newest first, within [`DEBUG_BYTES`]; `true` when
/// events were left out for size.
pub fn recent_events(conn: &Connection, source: &str, limit: usize) -> Result<(Vec<DebugEvent>, bool)> {
    debug_events(conn, "where source = ?1 order by seq desc limit ?2", params![source, limit as i64], DEBUG_BYTES)
}

/// Cuts an invalid event's body to [`INVALID_BODY_BYTES`] (at a character boundary), saying how
/// long it was.
pub fn truncate_invalid(body: String) -> String {
    if body.len() <= INVALID_BODY_BYTES {
        return body;
    }
    let mut end = INVALID_BODY_BYTES;
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… [cut: {} bytes in all]", &body[..end], body.len())
}

/// Every event sent by any of `idents` (userIds or anonymousIds), oldest first. Scans the log:
/// meant for audits, not for the ingest path.
pub fn events_of(conn: &Connection, idents: &[String]) -> Result<Vec<DebugEvent>> {
    let list = serde_json::to_string(idents).expect("strings serialize");
    let (events, _) = debug_events(
        conn,
        "where json_extract(body, '$.userId') in (select value from json_each(?1))
            or json_extract(body, '$.anonymousId') in (select value from json_each(?1))
            or json_extract(body, '$.previousId') in (select value from json_each(?1))
         order by seq",
        params![list],
        usize::MAX,
    )?;
    Ok(events)
}

/// Invalid events of a source (reported, not lost), newest first.
pub fn recent_invalid(conn: &Connection, source: &str, limit: usize) -> Result<Vec<Value>> {
    let mut stmt = conn
        .prepare_cached("select received_at, reason, body from invalid where source = ?1 order by id desc limit ?2")
        .map_err(wrap(conn))?;
    let rows = stmt
        .query_map(params![source, limit as i64], |r| {
            let body: String = r.get(2)?;
            Ok(serde_json::json!({"received_at": r.get::<_, String>(0)?, "reason": r.get::<_, String>(1)?, "body": body}))
        })
        .map_err(wrap(conn))?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(wrap(conn))
}

/// What a per-minute statistic counts (the `metric` of the `stats` table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stat {
    /// Events stored for a destination (routed or not).
    Received,
    /// Events queued for it.
    Routed,
    /// Events consent withheld from it (per refusing category, and in total).
    Withheld,
    /// Events the integrations object turned off for it.
    TurnedOff,
    /// Events that arrived while it was disabled.
    Disabled,
    /// Events whose consent values were not booleans.
    ConsentWarnings,
    /// Events it accepted.
    Delivered,
    /// Events it accepted after a failed attempt.
    Retried,
    /// Events whose delivery failed.
    Failed,
    /// Deletes of a person queued for the destination because consent was withdrawn (R13).
    WithdrawalQueued,
    /// People the destination deleted because consent was withdrawn (R13,
    /// [`crate::person_delete`]).
    DeletedOnWithdrawal,
    /// People the destination deleted on a privacy request ([`crate::person_delete`]).
    DeletedOnRequest,
}

impl Stat {
    /// The name stored and shown in `/v1/overview`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Routed => "routed",
            Self::Withheld => "withheld",
            Self::TurnedOff => "turned_off",
            Self::Disabled => "disabled",
            Self::ConsentWarnings => "consent_warnings",
            Self::Delivered => "delivered",
            Self::Retried => "retried",
            Self::Failed => "failed",
            Self::WithdrawalQueued => "withdrawal_deletes_queued",
            Self::DeletedOnWithdrawal => "deleted_on_withdrawal",
            Self::DeletedOnRequest => "deleted_on_request",
        }
    }
}

/// Adds `n` to a destination's statistic of a minute (`category` empty: not per category).
pub fn add_stat(conn: &Connection, minute: i64, dest: &str, stat: Stat, category: &str, n: u64) -> Result<()> {
    if n == 0 {
        return Ok(());
    }
    conn.prepare_cached(
        "insert into stats (minute, dest, metric, category, n) values (?1, ?2, ?3, ?4, ?5)
         on conflict (minute, dest, metric, category) do update set n = n + excluded.n",
    )
    .and_then(|mut st| st.execute(params![minute, dest, stat.as_str(), category, n as i64]))
    .map(|_| ())
    .map_err(wrap(conn))
}

/// Adds `n` events of `source` dropped at ingest as suppressed (a privacy request) to a minute.
pub fn add_dropped_suppressed(conn: &Connection, minute: i64, source: &str, n: u64) -> Result<()> {
    conn.prepare_cached(
        "insert into privacy_drops (minute, source, n) values (?1, ?2, ?3)
         on conflict (minute, source) do update set n = n + excluded.n",
    )
    .and_then(|mut st| st.execute(params![minute, source, n as i64]))
    .map(|_| ())
    .map_err(wrap(conn))
}

/// Events dropped at ingest as suppressed since `since_minute` (unix minutes), in total.
pub fn dropped_suppressed(conn: &Connection, since_minute: i64) -> Result<i64> {
    query_row(conn, "select coalesce(sum(n), 0) from privacy_drops where minute >= ?1", [since_minute], |r| r.get(0))
        .map_err(wrap(conn))
}

/// Adds one summed statistic to an overview (`{dest: {metric: n, metric_by_category: {c: n}}}`).
pub(crate) fn add_overview_row(
    out: &mut serde_json::Map<String, Value>,
    dest: String,
    metric: String,
    category: String,
    n: i64,
) {
    let d = out.entry(dest).or_insert_with(|| serde_json::json!({}));
    let Some(d) = d.as_object_mut() else { return };
    if category.is_empty() {
        d.insert(metric, Value::from(n));
    } else {
        let m = d.entry(format!("{metric}_by_category")).or_insert_with(|| serde_json::json!({}));
        m[category] = Value::from(n);
    }
}

/// Delivery statistics per destination since `since_minute` (unix minutes).
pub fn overview(conn: &Connection, since_minute: i64) -> Result<Value> {
    let mut stmt = conn
        .prepare_cached(
            "select dest, metric, category, sum(n) from stats where minute >= ?1 group by dest, metric, category order by dest",
        )
        .map_err(wrap(conn))?;
    let mut out = serde_json::Map::new();
    let mut rows = stmt.query(params![since_minute]).map_err(wrap(conn))?;
    while let Some(r) = rows.next().map_err(wrap(conn))? {
        let (dest, metric, category, n): (String, String, String, i64) = (
            r.get(0).map_err(wrap(conn))?,
            r.get(1).map_err(wrap(conn))?,
            r.get(2).map_err(wrap(conn))?,
            r.get(3).map_err(wrap(conn))?,
        );
        add_overview_row(&mut out, dest, metric, category, n);
    }
    let pending: Vec<(String, i64)> = {
        let sql = format!(
            "select c.dest, (select count(*) from events e where e.seq > c.delivered_seq and {})
             from cursors c",
            crate::delivery::routes::sql_contains("e.routes", "c.dest")
        );
        let mut s = conn.prepare_cached(&sql).map_err(wrap(conn))?;
        let r = s.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).map_err(wrap(conn))?;
        r.collect::<rusqlite::Result<_>>().map_err(wrap(conn))?
    };
    for (dest, n) in pending {
        let d = out.entry(dest).or_insert_with(|| serde_json::json!({})).as_object_mut().expect("object");
        d.insert("pending".into(), Value::from(n));
    }
    Ok(Value::Object(out))
}

/// The profile an identifier (`userId` or `anonymousId`) belongs to.
pub fn profile_of(conn: &Connection, ident: &str) -> Result<Option<sluice_core::profiles::Profile>> {
    let id: Option<i64> = conn
        .query_row(
            "select profile from identities where ident in (?1, ?2) order by ident desc limit 1",
            params![format!("u:{ident}"), format!("a:{ident}")],
            |r| r.get(0),
        )
        .optional()
        .map_err(wrap(conn))?;
    let Some(id) = id else { return Ok(None) };
    let data: Option<String> =
        conn.query_row("select data from profiles where id = ?1", [id], |r| r.get(0)).optional().map_err(wrap(conn))?;
    Ok(data.and_then(|d| serde_json::from_str(&d).ok()))
}

/// The identifiers of a person's profile in the event log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileIds {
    /// Its `userId`s, sorted.
    pub user_ids: Vec<String>,
    /// Its `anonymousId`s, sorted.
    pub anonymous_ids: Vec<String>,
}

impl ProfileIds {
    /// Every identifier, sorted, without duplicates (an id may be both kinds).
    pub fn all(&self) -> Vec<String> {
        let set: std::collections::BTreeSet<&String> = self.user_ids.iter().chain(&self.anonymous_ids).collect();
        set.into_iter().cloned().collect()
    }

    /// Whether the log knows none of them.
    pub fn is_empty(&self) -> bool {
        self.user_ids.is_empty() && self.anonymous_ids.is_empty()
    }
}

/// Every identifier of the profiles `idents` belong to (`userId`s and `anonymousId`s, joined by
/// identify or alias), `idents` themselves included when the log knows them; empty when none
/// of them was ever seen. A profile links at most [`profiles::MAX_IDENTIFIERS`], so this is
/// bounded per id.
pub fn profile_identifiers(conn: &Connection, idents: &[String]) -> Result<ProfileIds> {
    let mut stmt = conn
        .prepare_cached(
            "select j.ident from identities i join identities j on j.profile = i.profile where i.ident in (?1, ?2)",
        )
        .map_err(wrap(conn))?;
    let (mut users, mut anons) = (std::collections::BTreeSet::new(), std::collections::BTreeSet::new());
    for id in idents {
        let rows = stmt
            .query_map(params![format!("u:{id}"), format!("a:{id}")], |r| r.get::<_, String>(0))
            .map_err(wrap(conn))?;
        for r in rows {
            let joined = r.map_err(wrap(conn))?;
            match joined.split_once(':') {
                Some(("u", bare)) if !bare.is_empty() => users.insert(bare.to_string()),
                Some((_, bare)) if !bare.is_empty() => anons.insert(bare.to_string()),
                _ => false,
            };
        }
    }
    Ok(ProfileIds { user_ids: users.into_iter().collect(), anonymous_ids: anons.into_iter().collect() })
}

/// An event a destination refused for good, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeadLetter {
    /// The event's place in the log.
    pub seq: i64,
    /// The reason (the receiver's answer, or the limit it broke).
    pub error: String,
    /// When it was given up (RFC 3339).
    pub at: String,
}

/// The latest `limit` events `dest` refused for good, newest first.
pub fn dead_letters(conn: &Connection, dest: &str, limit: usize) -> Result<Vec<DeadLetter>> {
    let w = wrap(conn);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut stmt = conn
        .prepare_cached("select seq, error, at from dead where dest = ?1 order by seq desc limit ?2")
        .map_err(&w)?;
    let rows = stmt
        .query_map(params![dest, limit], |r| Ok(DeadLetter { seq: r.get(0)?, error: r.get(1)?, at: r.get(2)? }))
        .map_err(&w)?;
    rows.collect::<rusqlite::Result<_>>().map_err(&w)
}

/// Where a destination's delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Cursor {
    /// Every event routed to it up to this seq is delivered or dead.
    pub delivered_seq: i64,
    /// Failed attempts at the head batch since the last success.
    pub attempts: i64,
    /// When the head batch is tried again (Unix milliseconds; 0: now).
    pub next_at: i64,
}

/// Whether `dest`'s worker has delivered (or passed) the log entry `seq`; false while its worker
/// never started.
pub fn delivered_past(conn: &Connection, dest: &str, seq: i64) -> Result<bool> {
    Ok(cursor(conn, dest)?.is_some_and(|c| c.delivered_seq >= seq))
}

/// The cursor of `dest` (`None`: its worker never started).
pub fn cursor(conn: &Connection, dest: &str) -> Result<Option<Cursor>> {
    query_row(conn, "select delivered_seq, attempts, next_at from cursors where dest = ?1", [dest], |r| {
        Ok(Cursor { delivered_seq: r.get(0)?, attempts: r.get(1)?, next_at: r.get(2)? })
    })
    .optional()
    .map_err(wrap(conn))
}

/// A destination's totals over a window of minutes (alerts, SPEC §12).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowStats {
    /// Events stored for it (routed or not).
    pub received: u64,
    /// Events consent withheld from it.
    pub withheld: u64,
    /// Events it accepted.
    pub delivered: u64,
    /// Events whose delivery failed.
    pub failed: u64,
}

/// Each destination's totals over the minutes `from_minute <= minute < to_minute` (Unix
/// minutes).
impl WindowStats {
    /// Sets the total of `metric` (`received`, `withheld`, `delivered`; anything else: `failed`).
    pub(crate) fn set(&mut self, metric: &str, n: i64) {
        let n = n.max(0) as u64;
        match metric {
            "received" => self.received = n,
            "withheld" => self.withheld = n,
            "delivered" => self.delivered = n,
            _ => self.failed = n,
        }
    }
}

pub fn window_stats(
    conn: &Connection,
    from_minute: i64,
    to_minute: i64,
) -> Result<std::collections::BTreeMap<String, WindowStats>> {
    let mut stmt = conn
        .prepare_cached(
            "select dest, metric, sum(n) from stats where minute >= ?1 and minute < ?2 and category = ''
             and metric in ('received', 'withheld', 'delivered', 'failed') group by dest, metric",
        )
        .map_err(wrap(conn))?;
    let mut out: std::collections::BTreeMap<String, WindowStats> = Default::default();
    let mut rows = stmt.query(params![from_minute, to_minute]).map_err(wrap(conn))?;
    while let Some(r) = rows.next().map_err(wrap(conn))? {
        let (dest, metric, n): (String, String, i64) =
            (r.get(0).map_err(wrap(conn))?, r.get(1).map_err(wrap(conn))?, r.get(2).map_err(wrap(conn))?);
        out.entry(dest).or_default().set(&metric, n);
    }
    Ok(out)
}
