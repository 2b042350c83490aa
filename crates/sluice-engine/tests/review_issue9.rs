//! Attacks of the independent review of issue 9 on the one consent decision (R4 × R5).

mod common;
use common::*;

/// Finding 3: `unmapped_models: block` (R4: a model that maps no consent column fails closed)
/// is bypassed for a destination whose kind stamps consent (`connections`, R5). `Gate::build`
/// answers `Open(Stamps)` before it looks at R4, and the stamp is built from the model's
/// consent mappings, which are empty: every record is sent **without any consent object**.
/// Downstream, an event with no consent object is unrestricted (R7, default
/// `missing_consent`), so people who never consented reach every destination behind the
/// router — the opposite of the fail-closed setting the owner chose. Records must either be
/// withheld or carry a stamp that says "no" for every category governing the destination.
#[test]
fn review9_block_still_fails_closed_for_a_stamping_destination() {
    let mut env = Env::new(
        "create table people(id integer, email text);
         insert into people values (1,'a@x'),(2,'b@x');",
    );
    let ws = env.workspace(
        "workspace: {unmapped_models: block}
destinations:
  - {id: segment, name: Segment, kind: connections, settings: {url: \"{URL}\", write_key: wk_1, retry_initial_ms: 5}}
consent_categories:
  - {id: C0004, name: Advertising, destinations: [segment]}
models:
  - {id: people, source: dwh, sql: select * from people, unique_id: id, mappings: [{destination: segment}]}",
    );
    env.sync(&ws, "people");
    let events = env.rx.items("/v1/batch");
    assert_eq!(events.len(), 2, "R5: stamping destinations are not filtered, they get a 'no' stamp");
    for e in &events {
        assert_eq!(
            e["context"]["consent"]["categoryPreferences"]["C0004"], false,
            "a record of a model that maps no consent column (unmapped_models: block) reached a \
             connections destination without a 'no' stamp; downstream treats it as unrestricted: {e}"
        );
    }
}

/// Finding 4: `sluice export` (without `--reveal-secrets`) replaces a destination URL by a
/// `${SLUICE_SECRET_n}` placeholder only when `url_has_credentials` says so: user information,
/// query or fragment. A URL whose **path** is the credential (Slack
/// `hooks.slack.com/services/T/B/<secret>`, Discord `/api/webhooks/<id>/<token>`, Zapier) is
/// exported in clear, although the API and the audit log already treat that path as a secret
/// (`redact_url` hides it). The exported file is the one meant to be committed and shared.
#[test]
fn review9_export_hides_a_secret_url_path() {
    let env = Env::new("create table t(id integer);");
    let ws = env.workspace(
        "destinations:
  - {id: slack, kind: webhook, settings: {url: 'https://hooks.slack.com/services/T000/B000/XXsecretTOKENxx'}}",
    );
    let (yaml, vars) = ws.export(false);
    assert!(!yaml.contains("XXsecretTOKENxx"), "the exported workspace file holds the webhook's secret path:\n{yaml}");
    assert!(vars.iter().any(|(_, v)| v.contains("XXsecretTOKENxx")), "{vars:?}");
}
