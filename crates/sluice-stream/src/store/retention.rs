//! Keeping stream.db bounded: events leave the log once every destination has passed them and
//! they are older than the retention; messageIds are remembered for 24 to 48 hours (two
//! generations of the de-duplication table, swapped daily); statistics are kept 90 days.

use super::{exec, query_row, wrap, Result};
use rusqlite::{params, Connection, OptionalExtension};

/// What a trim removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Trimmed {
    /// Events removed from the log.
    pub events: u64,
    /// Whether the de-duplication window rotated.
    pub rotated: bool,
}

const DAY: i64 = 86_400;
/// Most events removed by one trim.
const MAX_TRIM: i64 = 50_000;

/// Removes what is no longer needed. `now` is unix seconds; `retention_secs` is how long a
/// delivered event stays visible to the debugger and audits; `dests` are the destinations that
/// deliver (a removed destination's cursor does not hold the log back); `holders` are every
/// destination of the workspace, enabled or not: a person-delete entry
/// ([`crate::person_delete`]) routed to one of them that its cursor has not passed is never
/// trimmed, however old (a disabled destination deletes once enabled again).
pub fn trim(conn: &Connection, now: i64, retention_secs: i64, dests: &[String], holders: &[String]) -> Result<Trimmed> {
    let w = wrap(conn);
    let mut out = Trimmed::default();
    // events every destination has passed, older than the retention
    let cutoff = crate::rfc3339(chrono::DateTime::from_timestamp(now - retention_secs, 0).unwrap_or_default());
    let mut passed = i64::MAX;
    for d in dests {
        let seq: Option<i64> = query_row(conn, "select delivered_seq from cursors where dest = ?1", [d], |r| r.get(0))
            .optional()
            .map_err(&w)?;
        passed = passed.min(seq.unwrap_or(0));
    }
    let passed = Some(passed);
    let young: Option<i64> =
        query_row(conn, "select min(seq) from events where received_at >= ?1", [&cutoff], |r| r.get(0))
            .optional()
            .map_err(&w)?
            .flatten();
    let upto = match (passed, young) {
        (Some(p), Some(y)) => p.min(y - 1),
        (Some(p), None) => p,
        (None, _) => 0,
    };
    let owed: Option<i64> = query_row(
        conn,
        &format!(
            "select min(e.seq) from events e, json_each(?2) d where e.source = ?1 and {}
               and e.seq > coalesce((select delivered_seq from cursors where dest = d.value), 0)",
            crate::delivery::routes::sql_contains("e.routes", "d.value")
        ),
        params![crate::person_delete::SOURCE, serde_json::to_string(holders).expect("strings serialize")],
        |r| r.get(0),
    )
    .map_err(&w)?;
    let upto = owed.map_or(upto, |o| upto.min(o - 1));
    if upto > 0 {
        // in slices, so the writer (which runs this between groups) never stalls ingest for long
        let first: i64 = query_row(conn, "select coalesce(min(seq), 0) from events", [], |r| r.get(0)).map_err(&w)?;
        let upto = upto.min(first + MAX_TRIM);
        out.events = exec(conn, "delete from events where seq <= ?1", [upto]).map_err(&w)? as u64;
        exec(conn, "delete from invalid where received_at < ?1", [&cutoff]).map_err(&w)?;
    }
    exec(conn, "delete from stats where minute < ?1", [(now - 90 * DAY) / 60]).map_err(&w)?;
    exec(conn, "delete from privacy_drops where minute < ?1", [(now - 90 * DAY) / 60]).map_err(&w)?;
    // the de-duplication window
    let rotated_at: i64 =
        query_row(conn, "select coalesce(max(value), 0) from meta where key = 'dedupe_rotated_at'", [], |r| r.get(0))
            .map_err(&w)?;
    if rotated_at == 0 {
        exec(conn, "insert or replace into meta (key, value) values ('dedupe_rotated_at', ?1)", [now]).map_err(&w)?;
    } else if now - rotated_at >= DAY {
        conn.execute_batch(
            "drop table if exists dedupe_prev;
             alter table dedupe rename to dedupe_prev;
             create table dedupe (source text not null, message_id text not null, primary key (source, message_id)) without rowid;",
        )
        .map_err(&w)?;
        exec(conn, "insert or replace into meta (key, value) values ('dedupe_rotated_at', ?1)", params![now])
            .map_err(&w)?;
        out.rotated = true;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_only_what_every_destination_passed_and_rotates_dedupe_daily() {
        let dir = tempfile::tempdir().unwrap();
        let c = crate::store::open(dir.path()).unwrap();
        let t0 = 1_700_000_000;
        let at = |secs: i64| crate::rfc3339(chrono::DateTime::from_timestamp(secs, 0).unwrap());
        for (seq, secs) in [(1, t0 - 10 * DAY), (2, t0 - 9 * DAY), (3, t0 - 8 * DAY), (4, t0)] {
            c.execute(
                "insert into events (seq, source, message_id, received_at, body, decisions) values (?1, 'web', ?1, ?2, '{}', '{}')",
                params![seq, at(secs)],
            )
            .unwrap();
        }
        c.execute("insert into cursors (dest, delivered_seq) values ('a', 4), ('b', 2)", []).unwrap();
        let dests = vec!["a".to_string(), "b".to_string()];
        let with_new = [dests.clone(), vec!["new".to_string()]].concat();
        assert_eq!(trim(&c, t0, 7 * DAY, &with_new, &[]).unwrap().events, 0, "new has delivered nothing");
        let r = trim(&c, t0, 7 * DAY, &dests, &[]).unwrap();
        assert_eq!(r.events, 2, "b has not passed event 3");
        assert_eq!(
            trim(&c, t0, 7 * DAY, &["a".to_string()], &[]).unwrap().events,
            1,
            "a removed destination holds nothing back"
        );
        c.execute(
            "insert into events (seq, source, message_id, received_at, body, decisions) values (5, 'web', 5, ?1, '{}', '{}')",
            [at(t0)],
        )
        .unwrap();
        c.execute("update cursors set delivered_seq = 5", []).unwrap();
        assert_eq!(trim(&c, t0, 7 * DAY, &dests, &[]).unwrap().events, 0, "events younger than the retention stay");
        // de-duplication: remembered across one rotation, forgotten after two
        c.execute("insert into dedupe (source, message_id) values ('web', 'm1')", []).unwrap();
        assert!(!trim(&c, t0 + DAY - 1, 7 * DAY, &dests, &[]).unwrap().rotated);
        assert!(trim(&c, t0 + DAY, 7 * DAY, &dests, &[]).unwrap().rotated);
        assert!(crate::store::seen(&c, "web", "m1").unwrap());
        assert!(trim(&c, t0 + 2 * DAY, 7 * DAY, &dests, &[]).unwrap().rotated);
        assert!(!crate::store::seen(&c, "web", "m1").unwrap());
    }

    #[test]
    fn a_person_delete_a_destination_owes_is_never_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let c = crate::store::open(dir.path()).unwrap();
        let t0 = 1_700_000_000;
        let old = crate::rfc3339(chrono::DateTime::from_timestamp(t0 - 30 * DAY, 0).unwrap());
        for (seq, source, routes) in
            [(1, "web", "[\"a\"]"), (2, crate::person_delete::SOURCE, "[\"off\"]"), (3, "web", "[\"a\"]")]
        {
            c.execute(
                "insert into events (seq, source, message_id, received_at, body, decisions, routes) values (?1, ?2, ?1, ?3, '{}', '{}', ?4)",
                params![seq, source, old, routes],
            )
            .unwrap();
        }
        // `a` delivers and passed everything; `off` (disabled: no worker, no cursor) owes entry 2
        c.execute("insert into cursors (dest, delivered_seq) values ('a', 3)", []).unwrap();
        let (dests, holders) = (vec!["a".to_string()], vec!["a".to_string(), "off".to_string()]);
        assert_eq!(trim(&c, t0, 7 * DAY, &dests, &holders).unwrap().events, 1, "only the event before it");
        let left: i64 = c.query_row("select min(seq) from events", [], |r| r.get(0)).unwrap();
        assert_eq!(left, 2);
        // once `off` passed it (or is removed from the workspace), it goes
        c.execute("insert into cursors (dest, delivered_seq) values ('off', 2)", []).unwrap();
        assert_eq!(trim(&c, t0, 7 * DAY, &dests, &holders).unwrap().events, 2);
    }
}
