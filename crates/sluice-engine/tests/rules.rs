//! R1–R4, R11 and R12 end to end: real SQLite warehouse, real state store, real HTTP receiver.

mod common;
use common::*;

const PEOPLE: &str = "create table people(id integer, email text, ads, analytics);
    insert into people values (1,'a@x',1,1),(2,'b@x',0,1),(3,'c@x',null,0),(4,'d@x','true','f'),(5,'e@x','yes',null);";

fn dests(names: &[&str]) -> String {
    format!("destinations:\n{}", names.iter().map(|n| hook(n)).collect::<String>())
}

/// `people` to `ads` (governed by C0004, mapped to the `ads` column) and `crm` (ungoverned).
fn ads_and_crm(env: &Env) -> sluice_engine::Workspace {
    env.workspace(&format!(
        "{}consent_categories: [{{id: C0004, name: Advertising, destinations: [ads]}}]
models:
  - {{id: people, source: dwh, sql: select * from people, unique_id: id, consent: {{C0004: ads}},
      mappings: [{{destination: ads}}, {{destination: crm}}]}}",
        dests(&["ads", "crm"])
    ))
}

#[test]
fn r1_unmapped_destination_gets_every_record() {
    let mut env = Env::new(PEOPLE);
    let ws = ads_and_crm(&env);
    let r = env.sync(&ws, "people");
    assert_eq!(env.ids("/crm", "added"), ids(&["1", "2", "3", "4", "5"]));
    assert_eq!(env.ids("/ads", "added"), ids(&["1", "4"]));
    assert_eq!(mapping(&r, "crm").withheld_by_consent, 0);
    assert_eq!(mapping(&r, "ads").withheld_by_consent, 3);
    assert_eq!(mapping(&r, "ads").withheld_by_category["C0004"], 3);
    assert_eq!(r.consent_warnings["C0004"], 2, "NULL and 'yes' are validation warnings");
}

#[test]
fn r2_all_and_any_policies() {
    let yaml = |policy: &str| {
        format!(
            "workspace: {{policy: {policy}}}
{}consent_categories:
  - {{id: C0004, name: Advertising, destinations: [both]}}
  - {{id: C0002, name: Analytics, destinations: [both]}}
models:
  - {{id: people, source: dwh, sql: select * from people, unique_id: id,
      consent: {{C0004: ads, C0002: analytics}}, mappings: [{{destination: both}}]}}",
            dests(&["both"])
        )
    };
    let mut env = Env::new(PEOPLE);
    let ws = env.workspace(&yaml("all"));
    let r = env.sync(&ws, "people");
    assert_eq!(env.ids("/both", "added"), ids(&["1"]));
    let m = mapping(&r, "both");
    assert_eq!((m.added, m.delivered, m.withheld_by_consent), (1, 1, 4));
    // a row refused by two categories counts under both
    assert_eq!(m.withheld_by_category["C0004"], 3);
    assert_eq!(m.withheld_by_category["C0002"], 3);

    let mut env = Env::new(PEOPLE);
    let ws = env.workspace(&yaml("any"));
    env.sync(&ws, "people");
    assert_eq!(env.ids("/both", "added"), ids(&["1", "2", "4"]));
}

#[test]
fn a_destination_policy_overrides_the_workspace_policy_for_it_alone() {
    // SPEC §12: `consent_policy` on a destination; the workspace says `all`, `lenient` says `any`
    let mut env = Env::new(PEOPLE);
    let dest = |id: &str, policy: &str| {
        format!("  - {{id: {id}, kind: webhook, {policy}settings: {{url: \"{{URL}}/{id}\"}}}}\n")
    };
    let yaml = format!(
        "workspace: {{policy: all}}
destinations:
{}{}consent_categories:
  - {{id: C0004, name: Advertising, destinations: [strict, lenient]}}
  - {{id: C0002, name: Analytics, destinations: [strict, lenient]}}
models:
  - {{id: people, source: dwh, sql: select * from people, unique_id: id,
      consent: {{C0004: ads, C0002: analytics}}, mappings: [{{destination: strict}}, {{destination: lenient}}]}}",
        dest("strict", ""),
        dest("lenient", "consent_policy: any, ")
    );
    let ws = env.workspace(&yaml);
    let r = env.sync(&ws, "people");
    assert_eq!(env.ids("/strict", "added"), ids(&["1"]));
    assert_eq!(env.ids("/lenient", "added"), ids(&["1", "2", "4"]));
    assert_eq!(mapping(&r, "strict").withheld_by_consent, 4);
    assert_eq!(mapping(&r, "lenient").withheld_by_consent, 2);
    // back under the workspace's policy, what only `any` let through is withheld again
    let ws = env.workspace(&yaml.replace("consent_policy: any, ", ""));
    let r = env.sync(&ws, "people");
    assert_eq!(mapping(&r, "lenient").withheld_by_consent, 4);
    assert_eq!(env.ids("/lenient", "added").len(), 3, "nothing new was added");
}

#[test]
fn r3_category_without_column_blocks_the_destination() {
    let mut env = Env::new(PEOPLE);
    let ws = env.workspace(&format!(
        "{}consent_categories:
  - {{id: C0004, name: Advertising, destinations: [ads]}}
  - {{id: C0003, name: Personalization, destinations: [perso]}}
models:
  - {{id: people, source: dwh, sql: select * from people, unique_id: id, consent: {{C0004: ads}},
      mappings: [{{destination: ads}}, {{destination: perso}}]}}",
        dests(&["ads", "perso"])
    ));
    let r = env.sync(&ws, "people");
    assert!(env.ids("/perso", "added").is_empty());
    assert_eq!(mapping(&r, "perso").withheld_by_category["C0003"], 5);
    assert!(mapping(&r, "perso").consent_rule.contains("R3"), "{}", mapping(&r, "perso").consent_rule);
    assert_eq!(env.ids("/ads", "added"), ids(&["1", "4"]));
}

fn r4_yaml(mode: &str) -> String {
    format!(
        "workspace: {{unmapped_models: {mode}}}
{}consent_categories: [{{id: C0004, name: Advertising, destinations: [ads]}}]
models:
  - {{id: people, source: dwh, sql: 'select id, email from people', unique_id: id,
      mappings: [{{destination: ads}}, {{destination: crm}}]}}",
        dests(&["ads", "crm"])
    )
}

#[test]
fn r4_unmapped_model_flows_everywhere_and_warns() {
    let mut env = Env::new(PEOPLE);
    let ws = env.workspace(&r4_yaml("allow"));
    let r = env.sync(&ws, "people");
    assert_eq!(env.ids("/ads", "added").len(), 5);
    assert_eq!(env.ids("/crm", "added").len(), 5);
    assert!(r.warnings.iter().any(|w| w.contains("maps no consent column")), "{:?}", r.warnings);
    assert!(mapping(&r, "ads").consent_rule.starts_with("R4"));
    // every sync warns, not only the first
    let r = env.sync(&ws, "people");
    assert!(!r.warnings.is_empty());
}

#[test]
fn r4_block_fails_closed() {
    let mut env = Env::new(PEOPLE);
    let ws = env.workspace(&r4_yaml("block"));
    let r = env.sync(&ws, "people");
    assert!(env.ids("/ads", "added").is_empty());
    assert_eq!(mapping(&r, "ads").withheld_by_consent, 5);
    assert_eq!(env.ids("/crm", "added").len(), 5, "R1 destinations still receive");
}

#[test]
fn r11_withheld_records_are_not_metered() {
    let mut env = Env::new(PEOPLE);
    let ws = env.workspace(&format!(
        "{}consent_categories: [{{id: C0004, name: Advertising, destinations: [ads, down]}}]
models:
  - {{id: people, source: dwh, sql: select * from people, unique_id: id, consent: {{C0004: ads}},
      mappings: [{{destination: ads}}, {{destination: down}}]}}",
        dests(&["ads"]) + &hook("down").replace("{URL}/down", "http://127.0.0.1:9/down")
    ));
    env.sync(&ws, "people");
    let usage = env.store.usage().unwrap();
    let get = |d: &str| usage.iter().find(|u| u.destination == d).map(|u| u.records);
    assert_eq!(get("ads"), Some(2), "2 delivered, 3 withheld not counted");
    assert_eq!(get("down"), Some(2), "failed records count once for the run");
}

#[test]
fn r12_disabled_destination_does_not_sync_nor_move_its_checkpoint() {
    let mut env = Env::new(PEOPLE);
    let base = format!(
        "{}consent_categories: []
models:
  - {{id: people, source: dwh, sql: select * from people, unique_id: id, mappings: [{{destination: crm}}]}}",
        dests(&["crm"])
    );
    let off = env.workspace(&base.replace("kind: webhook", "kind: webhook, enabled: false"));
    let r = env.sync(&off, "people");
    let m = mapping(&r, "crm");
    assert_eq!((m.status.as_str(), m.added, m.delivered), ("disabled", 0, 0));
    assert!(env.rx.requests().is_empty());
    let on = env.workspace(&base);
    env.sync(&on, "people");
    assert_eq!(env.ids("/crm", "added").len(), 5, "checkpoint did not move while disabled");
}

#[test]
fn r12_disabled_category_is_ignored() {
    let mut env = Env::new(PEOPLE);
    let ws = env.workspace(&format!(
        "{}consent_categories:
  - {{id: C0004, name: Advertising, destinations: [ads], enabled: false}}
  - {{id: C0002, name: Analytics, destinations: [ads]}}
models:
  - {{id: people, source: dwh, sql: select * from people, unique_id: id, consent: {{C0004: ads, C0002: analytics}},
      mappings: [{{destination: ads}}]}}",
        dests(&["ads"])
    ));
    env.sync(&ws, "people");
    assert_eq!(env.ids("/ads", "added"), ids(&["1", "2"]), "only Analytics is enforced");
}

#[test]
fn reverse_etl_metrics_count_records_by_destination_and_outcome() {
    let mut env = Env::new(PEOPLE);
    let ws = ads_and_crm(&env);
    env.sync(&ws, "people");
    let text = sluice_engine::metrics::render();
    let line = |labels: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("sluice_sync_records_total{{{labels}}}")))
            .and_then(|l| l.rsplit(' ').next())
            .map(String::from)
    };
    assert_eq!(line("model=\"people\",destination=\"ads\",outcome=\"delivered\"").as_deref(), Some("2"), "{text}");
    assert_eq!(line("model=\"people\",destination=\"ads\",outcome=\"withheld_by_consent\"").as_deref(), Some("3"));
    assert_eq!(line("model=\"people\",destination=\"crm\",outcome=\"delivered\"").as_deref(), Some("5"));
    assert!(text.contains("sluice_sync_duration_seconds_count{model=\"people\",status=\"ok\"} 1"), "{text}");
}
