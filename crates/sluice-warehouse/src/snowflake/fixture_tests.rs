//! Chunked results, hostile chunks, key-pair login, bad passwords, long statements, timeouts
//! and cancellation, against the fixture (fixture.rs).

use super::fixture::{Fixture, Mode, PASSWORD, ROWS};
use super::*;
use crate::ScanNeeds;

const PUBLIC_KEY: &str = include_str!("testdata/test_key.pub");
const PRIVATE_KEY: &str = include_str!("testdata/test_key.p8");
const OTHER_KEY: &str = include_str!("testdata/other_key_pkcs1.pem");
/// `openssl rsa -in test_key.p8 -pubout -outform DER | openssl dgst -sha256 -binary | base64`
const FINGERPRINT: &str = "SHA256:dOe5lur4dTwqGobivWHJ7sOW5JbjfRP08Grs+AY8R38=";

fn opts(f: &Fixture) -> SnowflakeOptions {
    SnowflakeOptions {
        endpoint: f.url.clone(),
        account: "test_acct.eu-west-1".into(),
        user: "sluice_user".into(),
        password: Some(PASSWORD.into()),
        ..Default::default()
    }
}

fn scan(w: &mut SnowflakeWarehouse) -> Result<Vec<Row>, WarehouseError> {
    let mut rows = Vec::new();
    w.scan("select ID, N from T", "ID", IdOrder::Text, &ScanNeeds::default(), &mut |r| {
        rows.push(r);
        Ok(())
    })?;
    Ok(rows)
}

fn assert_all_rows(rows: &[Row]) {
    assert_eq!(rows.len(), ROWS);
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r.id.as_deref(), Some(format!("id{i:04}").as_str()));
        assert_eq!(r.values, vec![Value::from(format!("id{i:04}")), Value::from(i as i64)]);
    }
}

#[test]
fn json_chunks_are_fetched_in_order_with_the_result_key() {
    let f = Fixture::start(Mode::Json, PUBLIC_KEY);
    let mut w = SnowflakeWarehouse::connect(&opts(&f)).unwrap();
    assert_all_rows(&scan(&mut w).unwrap());
    let s = f.state.lock().unwrap();
    let paths: Vec<&str> = s.chunk_requests.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(paths, ["/chunks/0", "/chunks/1"]);
    for (_, headers) in &s.chunk_requests {
        let h = |n: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(n)).map(|(_, v)| v.as_str());
        assert_eq!(h("x-amz-server-side-encryption-customer-key"), Some("the-result-key"));
        assert_eq!(h("x-amz-server-side-encryption-customer-algorithm"), Some("AES256"));
        assert_eq!(h("authorization"), None, "the session token never goes to the chunk store");
    }
    assert_eq!(s.logins[0]["PASSWORD"], PASSWORD);
    assert!(w.warnings().is_empty(), "PUBLIC is no administration role");
    // the model is described (compiled, not run), then scanned, always as a subquery
    let (describe, scan) = (&s.queries[0], &s.queries[1]);
    assert_eq!((describe["describeOnly"].as_bool(), scan["describeOnly"].as_bool()), (Some(true), Some(false)));
    assert_eq!(describe["sqlText"], "SELECT * FROM (\nselect ID, N from T\n) AS sluice_model");
    assert_eq!(describe["parameters"]["STATEMENT_TIMEOUT_IN_SECONDS"], 60, "the preview timeout");
    assert_eq!(
        scan["sqlText"],
        "SELECT TO_VARCHAR(sluice_model.\"ID\"), sluice_model.* FROM (\nselect ID, N from T\n) AS sluice_model \
         ORDER BY TO_BINARY(TO_VARCHAR(sluice_model.\"ID\"), 'UTF-8')"
    );
    for q in [describe, scan] {
        assert_eq!(q["parameters"]["MULTI_STATEMENT_COUNT"], 1, "one statement per request");
    }
}

#[test]
fn the_session_settings_go_to_the_login_and_an_admin_role_is_reported() {
    let f = Fixture::start(Mode::Json, PUBLIC_KEY);
    let o = SnowflakeOptions { role: Some("ACCOUNTADMIN".into()), warehouse: Some("WH".into()), ..opts(&f) };
    let w = SnowflakeWarehouse::connect(&o).unwrap();
    assert_eq!(f.state.lock().unwrap().logins[0]["roleName"], "ACCOUNTADMIN");
    let warnings = w.warnings();
    assert!(warnings.len() == 1 && warnings[0].contains("role `ACCOUNTADMIN`"), "{warnings:?}");
}

#[test]
fn arrow_rowsets_and_chunks_with_chunk_headers() {
    let f = Fixture::start(Mode::Arrow, PUBLIC_KEY);
    let mut w = SnowflakeWarehouse::connect(&opts(&f)).unwrap();
    assert_all_rows(&scan(&mut w).unwrap());
    let s = f.state.lock().unwrap();
    assert_eq!(s.chunk_requests.len(), 2);
    assert!(s.chunk_requests[1].1.iter().any(|(k, v)| k.eq_ignore_ascii_case("x-custom-chunk-header") && v == "yes"));
}

#[test]
fn hostile_chunks_fail_clearly() {
    for (mode, want) in [
        (Mode::Truncated, "chunk 2 of 2"),
        (Mode::WrongCount, "99 rows where the answer announced 100"),
        (Mode::Error500, "HTTP 500 after 3 attempts"),
        (Mode::Unreachable, "chunk 1 of 2 (http://127.0.0.1:1/chunks/0)"),
        (Mode::GzipBomb, "larger than 256 MiB"),
    ] {
        let f = Fixture::start(mode, PUBLIC_KEY);
        let mut w = SnowflakeWarehouse::connect(&opts(&f)).unwrap();
        let mut seen = 0;
        let e = w
            .scan("select ID, N from T", "ID", IdOrder::Text, &ScanNeeds::default(), &mut |_| {
                seen += 1;
                Ok(())
            })
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{mode:?}: {e}");
        assert!(!e.contains("secret"), "the presigned URL's query is not shown: {e}");
        assert!(seen <= 200, "{mode:?}: no row of the broken chunk is passed on ({seen})");
    }
}

#[test]
fn a_bad_password_is_the_servers_message() {
    let f = Fixture::start(Mode::Json, PUBLIC_KEY);
    let e = SnowflakeWarehouse::connect(&SnowflakeOptions { password: Some("wrong".into()), ..opts(&f) }).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("Incorrect username or password was specified. (code 390100)"), "{msg}");
    assert!(msg.contains("test_acct.eu-west-1") && msg.contains("sluice_user"), "names the account: {msg}");
    assert!(!msg.contains("wrong"), "never shows the password: {msg}");
}

#[test]
fn key_pair_login_sends_a_jwt_the_registered_key_verifies() {
    let f = Fixture::start(Mode::Json, PUBLIC_KEY);
    let key = KeyPair::from_pem(PRIVATE_KEY).unwrap();
    assert_eq!(key.fingerprint, FINGERPRINT, "the fingerprint openssl computes");
    let o = SnowflakeOptions { password: None, private_key_pem: Some(PRIVATE_KEY.into()), ..opts(&f) };
    let mut w = SnowflakeWarehouse::connect(&o).unwrap();
    assert_all_rows(&scan(&mut w).unwrap());
    let login = f.state.lock().unwrap().logins[0].clone();
    assert_eq!(login["AUTHENTICATOR"], "SNOWFLAKE_JWT");
    assert_eq!(
        (login["ACCOUNT_NAME"].as_str(), login["LOGIN_NAME"].as_str()),
        (Some("test_acct"), Some("sluice_user"))
    );
    assert!(login.get("PASSWORD").is_none());
    let claims = &login["TOKEN"];
    assert_eq!(claims["iss"], format!("TEST_ACCT.SLUICE_USER.{FINGERPRINT}"));
    assert_eq!(claims["sub"], "TEST_ACCT.SLUICE_USER");
    let (iat, exp) = (claims["iat"].as_u64().unwrap(), claims["exp"].as_u64().unwrap());
    assert!(exp > iat && exp - iat <= 3600, "at most an hour: {claims}");

    // a key Snowflake does not know is refused with its message
    let o = SnowflakeOptions { password: None, private_key_pem: Some(OTHER_KEY.into()), ..opts(&f) };
    let e = SnowflakeWarehouse::connect(&o).unwrap_err().to_string();
    assert!(e.contains("JWT token is invalid. (code 390144)"), "{e}");
    let e = SnowflakeWarehouse::connect(&SnowflakeOptions { private_key_pem: Some("nope".into()), ..o })
        .unwrap_err()
        .to_string();
    assert!(e.contains("private_key_file") && e.contains("no PEM block"), "{e}");
}

#[test]
fn a_long_statement_is_polled_until_done() {
    let f = Fixture::start(Mode::Slow(3), PUBLIC_KEY);
    let mut w = SnowflakeWarehouse::connect(&opts(&f)).unwrap();
    assert_all_rows(&scan(&mut w).unwrap());
    assert_eq!(f.state.lock().unwrap().polls, 3);
}

#[test]
fn an_expired_session_token_is_renewed_while_a_statement_runs() {
    let f = Fixture::start(Mode::Expiring, PUBLIC_KEY);
    let mut w = SnowflakeWarehouse::connect(&opts(&f)).unwrap();
    assert_all_rows(&scan(&mut w).unwrap());
    let s = f.state.lock().unwrap();
    assert_eq!((s.renewals, s.polls), (1, 2), "renewed once with the master token, then polled with the new token");
}

#[test]
fn the_statement_timeout_is_the_servers_and_its_message_reaches_the_user() {
    let f = Fixture::start(Mode::Endless, PUBLIC_KEY);
    let o = SnowflakeOptions { statement_timeout: Some(Duration::from_secs(1)), ..opts(&f) };
    let mut w = SnowflakeWarehouse::connect(&o).unwrap();
    let e = scan(&mut w).unwrap_err();
    assert!(e.to_string().contains("timeout of 1 second(s) and was canceled"), "{e}");
    assert_eq!(e.sqlstate(), Some("57014"));
    assert!(!e.retryable());
    assert_eq!(f.state.lock().unwrap().logins[0]["SESSION_PARAMETERS"]["STATEMENT_TIMEOUT_IN_SECONDS"], 1);
}

#[test]
fn cancelling_aborts_the_statement_on_the_server() {
    let f = Fixture::start(Mode::Endless, PUBLIC_KEY);
    let canceller = Canceller::new();
    let mut w = SnowflakeWarehouse::connect(&opts(&f)).unwrap();
    w.attach_canceller(&canceller);
    let c = canceller.clone();
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(800));
        c.cancel();
    });
    let started = Instant::now();
    let e = scan(&mut w).unwrap_err();
    stopper.join().unwrap();
    assert!(matches!(e, WarehouseError::Cancelled), "{e}");
    assert!(started.elapsed() < Duration::from_secs(20));
    let aborts = f.state.lock().unwrap().aborts.clone();
    assert!(!aborts.is_empty(), "an abort-request reached the server");
    assert!(aborts[0]["requestId"].as_str().is_some_and(|r| r.len() == 36), "{aborts:?}");
    assert!(aborts[0]["sqlText"].as_str().unwrap().contains("ORDER BY"));
    assert!(matches!(w.columns("select 1"), Err(WarehouseError::Cancelled)), "later statements are refused");
}
