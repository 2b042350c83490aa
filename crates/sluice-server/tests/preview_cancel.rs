//! Issue 8, finding 5: a preview over the control API stops on the warehouse when its client
//! goes away, whether it hung up or gave up (its own timeout).

mod common;
use common::*;
use sluice_testkit::{pg_admin, pg_url, pg_wait_running, unique_name};
use std::io::Write;
use std::time::Duration;

/// A login role without privileges (Sluice refuses privileged ones); dropped at the end.
struct ReadOnlyRole(String);

impl ReadOnlyRole {
    fn new() -> Self {
        let name = unique_name("sluice_preview");
        // the model reads no table: a login is all it needs
        pg_admin().batch_execute(&format!("CREATE ROLE {name} LOGIN")).unwrap();
        Self(name)
    }
}

impl Drop for ReadOnlyRole {
    fn drop(&mut self) {
        let _ = pg_admin().batch_execute(&format!("DROP OWNED BY {0}; DROP ROLE {0}", self.0));
    }
}

/// A server whose model `slow` sleeps 30 s on PostgreSQL (as a read-only role), and a member's token.
fn start_slow(role: &ReadOnlyRole, marker: &str) -> (Server, String) {
    let url = pg_url().replacen("postgres@", &format!("{}@", role.0), 1);
    let s = start_in(
        tempfile::tempdir().unwrap(),
        &format!("{{id: pg, kind: postgres, url: \"{url}\"}}"),
        &format!(
            "models: [{{id: slow, source: pg, sql: \"select pg_sleep(30) as {marker}, 1 as id\", unique_id: id}}]\n"
        ),
    );
    let store = sluice_state::StateStore::open(&s.dir.path().join(".sluice")).unwrap();
    let token = store.create_token("max", sluice_state::Role::Member).unwrap();
    (s, token)
}

#[test]
fn finding_5_preview_of_a_client_that_went_away_stops_on_the_server() {
    let role = ReadOnlyRole::new();
    let marker = unique_name("hung_up");
    let (s, token) = start_slow(&role, &marker);
    let mut conn = std::net::TcpStream::connect(s.url.trim_start_matches("http://")).unwrap();
    write!(conn, "GET /api/v1/models/slow/preview HTTP/1.1\r\nHost: sluice\r\nAuthorization: Bearer {token}\r\n\r\n")
        .unwrap();
    assert!(pg_wait_running(true, &marker), "the preview runs on the warehouse");
    drop(conn);
    assert!(!pg_wait_running(false, &marker), "the preview stopped on the warehouse when its client hung up");
}

#[test]
fn finding_5_preview_whose_client_timed_out_stops_on_the_server() {
    let role = ReadOnlyRole::new();
    let marker = unique_name("gave_up");
    let (s, token) = start_slow(&role, &marker);
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(1)).build();
    let r = agent
        .get(&format!("{}/api/v1/models/slow/preview", s.url))
        .set("Authorization", &format!("Bearer {token}"))
        .call();
    assert!(matches!(r, Err(ureq::Error::Transport(_))), "the client timed out: {r:?}");
    assert!(!pg_wait_running(false, &marker), "the preview stopped on the warehouse after its client's timeout");
}
