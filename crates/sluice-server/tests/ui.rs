//! The web UI over real HTTP against a real `sluice serve`: its stable addresses, the login
//! redirect, the session cookie's flags, CSRF refusals, a member's forged posts refused by the
//! server, hostile names rendered inert, and changes made through the control API's own path.

mod common;

use common::{hook, start_cfg, warehouse_dir, Server};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The workspace of these tests: model `p` maps Advertising (C0004) but not Analytics (C0002).
fn server_with(configure: impl FnOnce(&mut sluice_server::ServeConfig)) -> Server {
    start_cfg(
        warehouse_dir(
            "create table p(id integer, email text, ads, analytics);
             insert into p values (1,'a@x',1,1),(2,'b@x',0,1),(3,'<script>alert(3)</script>',1,0);",
        ),
        "{id: dwh, kind: sqlite, path: w.db}",
        &format!(
            "destinations:\n{}{}consent_categories:
  - {{id: C0004, name: Advertising, destinations: [ads]}}
  - {{id: C0002, name: Analytics, destinations: [crm]}}
models: [{{id: p, source: dwh, sql: select * from p, unique_id: id, consent: {{C0004: ads}}, mappings: [{{destination: ads}}, {{destination: crm}}]}}]
",
            hook("ads", "Ads"),
            hook("crm", "CRM")
        ),
        configure,
    )
}

fn server() -> Server {
    server_with(|_| {})
}

fn member_token(s: &Server) -> String {
    let store = sluice_state::StateStore::open(&s.dir.path().join(".sluice")).unwrap();
    store.create_token("max", sluice_state::Role::Member).unwrap()
}

/// A browser-like client: keeps the session cookie, does not follow redirects.
struct Ui {
    base: String,
    agent: ureq::Agent,
    cookie: Option<String>,
}

/// An answer: status, headers we look at, body.
struct Answer {
    status: u16,
    location: Option<String>,
    set_cookie: Option<String>,
    csp: Option<String>,
    body: String,
}

impl Ui {
    fn new(base: &str) -> Self {
        Self { base: base.to_string(), agent: ureq::AgentBuilder::new().redirects(0).build(), cookie: None }
    }

    fn send(&self, req: ureq::Request, form: Option<&[(&str, &str)]>) -> Answer {
        let req = match &self.cookie {
            Some(c) => req.set("Cookie", c),
            None => req,
        };
        let r = match form {
            Some(f) => req.send_form(f),
            None => req.call(),
        };
        let r = match r {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{e}"),
        };
        Answer {
            status: r.status(),
            location: r.header("location").map(String::from),
            set_cookie: r.header("set-cookie").map(String::from),
            csp: r.header("content-security-policy").map(String::from),
            body: r.into_string().unwrap_or_default(),
        }
    }

    fn get(&self, path: &str) -> Answer {
        self.send(self.agent.get(&format!("{}{path}", self.base)), None)
    }

    fn post(&self, path: &str, form: &[(&str, &str)]) -> Answer {
        self.send(self.agent.post(&format!("{}{path}", self.base)), Some(form))
    }

    fn login(&mut self, token: &str) -> Answer {
        let a = self.post("/ui/login", &[("token", token)]);
        if let Some(c) = &a.set_cookie {
            self.cookie = Some(c.split(';').next().unwrap().to_string());
        }
        a
    }

    /// The CSRF token of the forms on `path`.
    fn csrf(&self, path: &str) -> String {
        let body = self.get(path).body;
        let at = body.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + 19;
        body[at..at + 64].to_string()
    }
}

fn api(s: &Server, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    common::call(s, method, path, Some(&s.token), body)
}

const PAGES: [&str; 13] = [
    "/ui/",
    "/ui/consent-categories",
    "/ui/models",
    "/ui/models/p",
    "/ui/sources",
    "/ui/destinations",
    "/ui/debugger/web",
    "/ui/profiles/u1",
    "/ui/audit-log",
    "/ui/usage",
    "/ui/debugger",
    "/ui/privacy-requests",
    "/ui/alerts",
];

#[test]
fn every_page_without_a_session_redirects_to_the_login_page() {
    let s = server();
    let ui = Ui::new(&s.url);
    for path in PAGES {
        let a = ui.get(path);
        assert_eq!((a.status, a.location.as_deref()), (303, Some("/ui/login")), "{path}");
    }
    // a state-changing post without a session changes nothing
    assert_eq!(ui.get("/ui/no-such-page").location.as_deref(), Some("/ui/login"));
    let a = ui.post("/ui/consent-categories", &[("id", "C9"), ("name", "Nope")]);
    assert_eq!((a.status, a.location.as_deref()), (303, Some("/ui/login")));
    assert_eq!(api(&s, "GET", "/api/v1/consent-categories/C9", None).0, 404);
    // a session id the server never issued is no session
    let mut forged = Ui::new(&s.url);
    forged.cookie = Some(format!("sluice_ui={}", "0".repeat(64)));
    assert_eq!(forged.get("/ui/").status, 303);
    // the login page: a form with a field named `token`, under a strict CSP
    let a = ui.get("/ui/login");
    assert_eq!(a.status, 200);
    assert!(a.body.contains("name=\"token\""), "{}", a.body);
    let csp = a.csp.expect("a CSP header");
    assert!(csp.contains("default-src 'self'") && csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
    assert!(!a.body.contains("<script>"), "no inline script: {}", a.body);
    assert!(!a.body.contains("style="), "no inline style (the CSP would block it)");
}

#[test]
fn a_valid_token_opens_an_httponly_samestrict_session_and_logout_ends_it() {
    let s = server();
    let mut ui = Ui::new(&s.url);
    let bad = ui.login("not-a-token");
    assert_eq!(bad.status, 401);
    assert!(bad.set_cookie.is_none());
    assert!(bad.body.contains("Unknown or disabled token"), "{}", bad.body);
    let ok = ui.login(&s.token);
    assert_eq!((ok.status, ok.location.as_deref()), (303, Some("/ui/")));
    let cookie = ok.set_cookie.expect("a session cookie");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/ui"] {
        assert!(cookie.contains(flag), "{flag} in {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: not Secure ({cookie})");
    assert!(!cookie.contains(&s.token), "the token stays on the server");
    for path in PAGES.iter().filter(|p| !p.starts_with("/ui/profiles")) {
        let a = ui.get(path);
        assert_eq!(a.status, 200, "{path}: {}", a.body);
        assert!(a.body.contains("test-owner"), "{path} names who is logged in");
    }
    assert_eq!(ui.get("/ui/profiles/nobody").status, 404);
    // behind a TLS proxy the cookie is Secure
    let tls = ui.send(
        ui.agent.post(&format!("{}/ui/login", s.url)).set("X-Forwarded-Proto", "https"),
        Some(&[("token", &s.token)]),
    );
    assert!(tls.set_cookie.unwrap().contains("; Secure"));
    // logout needs the CSRF token, then the session is gone
    assert_eq!(ui.post("/ui/logout", &[]).status, 403);
    let csrf = ui.csrf("/ui/");
    let out = ui.post("/ui/logout", &[("csrf", &csrf)]);
    assert_eq!((out.status, out.location.as_deref()), (303, Some("/ui/login")));
    assert!(out.set_cookie.unwrap().contains("Max-Age=0"));
    assert_eq!(ui.get("/ui/").status, 303);
}

#[test]
fn a_disabled_token_ends_its_sessions() {
    let s = server();
    let store = sluice_state::StateStore::open(&s.dir.path().join(".sluice")).unwrap();
    let t = store.create_token("temp", sluice_state::Role::Owner).unwrap();
    let mut ui = Ui::new(&s.url);
    assert_eq!(ui.login(&t).status, 303);
    assert_eq!(ui.get("/ui/").status, 200);
    let id = store.tokens().unwrap().into_iter().find(|t| t.name == "temp").unwrap().id;
    assert!(store.disable_token(id).unwrap());
    assert_eq!(ui.get("/ui/").location.as_deref(), Some("/ui/login"));
}

#[test]
fn forms_without_the_sessions_csrf_token_are_refused() {
    let s = server();
    let mut ui = Ui::new(&s.url);
    ui.login(&s.token);
    let csrf = ui.csrf("/ui/consent-categories");
    let missing = ui.post("/ui/consent-categories", &[("id", "C0009"), ("name", "Sales")]);
    assert_eq!(missing.status, 403);
    assert!(missing.body.contains("CSRF"), "{}", missing.body);
    let wrong = ui.post("/ui/consent-categories", &[("csrf", &"a".repeat(64)), ("id", "C0009"), ("name", "Sales")]);
    assert_eq!(wrong.status, 403);
    // another session's token is no good either
    let mut other = Ui::new(&s.url);
    other.login(&s.token);
    let theirs = other.csrf("/ui/consent-categories");
    assert_ne!(theirs, csrf);
    assert_eq!(ui.post("/ui/consent-categories", &[("csrf", &theirs), ("id", "C0009"), ("name", "Sales")]).status, 403);
    // posted from another site, even with the token
    let cross = ui.send(
        ui.agent.post(&format!("{}/ui/consent-categories", s.url)).set("Origin", "https://evil.example"),
        Some(&[("csrf", &csrf), ("id", "C0009"), ("name", "Sales")]),
    );
    assert_eq!(cross.status, 403);
    assert_eq!(api(&s, "GET", "/api/v1/consent-categories/C0009", None).0, 404, "nothing was created");
    // the right token: created, through the API's path (audited as the token)
    let ok = ui.post(
        "/ui/consent-categories",
        &[("csrf", &csrf), ("id", "C0009"), ("name", "Sales"), ("destinations", "crm")],
    );
    assert_eq!((ok.status, ok.location.as_deref()), (303, Some("/ui/consent-categories")));
    let (st, c) = api(&s, "GET", "/api/v1/consent-categories/C0009", None);
    assert_eq!(st, 200);
    assert_eq!(c, json!({"id": "C0009", "name": "Sales", "destinations": ["crm"], "enabled": true}));
    let (_, log) = api(&s, "GET", "/api/v1/audit-log", None);
    let entry = &log["items"][0];
    assert_eq!((entry["actor"].as_str(), entry["entity"].as_str()), (Some("token:test-owner"), Some("C0009")), "{log}");
    assert!(ui.get("/ui/consent-categories").body.contains("Created consent category Sales"));
    // the API's validation speaks through the page: a duplicate id is refused with its message
    let dup = ui.post("/ui/consent-categories", &[("csrf", &csrf), ("id", "C0009"), ("name", "Other")]);
    assert_eq!(dup.status, 303);
    assert!(ui.get("/ui/consent-categories").body.contains("a category with id `C0009` exists"));
}

#[test]
fn disabling_a_category_needs_its_name_typed() {
    let s = server();
    let mut ui = Ui::new(&s.url);
    ui.login(&s.token);
    let csrf = ui.csrf("/ui/consent-categories");
    let enabled = || api(&s, "GET", "/api/v1/consent-categories/C0004", None).1["enabled"].clone();
    let a = ui.post("/ui/consent-categories/C0004/disable", &[("csrf", &csrf), ("confirm", "advertising")]);
    assert_eq!(a.status, 303);
    assert_eq!(enabled(), true, "a wrong name disables nothing");
    assert!(ui.get("/ui/consent-categories").body.contains("type the category's name, Advertising, exactly"));
    ui.post("/ui/consent-categories/C0004/disable", &[("csrf", &csrf), ("confirm", "Advertising")]);
    assert_eq!(enabled(), false);
    ui.post("/ui/consent-categories/C0004/enable", &[("csrf", &csrf)]);
    assert_eq!(enabled(), true);
    // rename and remap
    ui.post(
        "/ui/consent-categories/C0004",
        &[("csrf", &csrf), ("name", "Ads & more"), ("destinations", "ads"), ("destinations", "crm")],
    );
    let (_, c) = api(&s, "GET", "/api/v1/consent-categories/C0004", None);
    assert_eq!((c["name"].as_str(), &c["destinations"]), (Some("Ads & more"), &json!(["ads", "crm"])));
}

#[test]
fn a_member_sees_consent_management_read_only_and_forged_posts_are_refused() {
    let s = server();
    let member = member_token(&s);
    let mut ui = Ui::new(&s.url);
    ui.login(&member);
    let page = ui.get("/ui/consent-categories");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Advertising") && page.body.contains("C0004"));
    assert!(page.body.contains("You are a member"), "{}", page.body);
    for control in ["action=\"/ui/consent-categories\"", "/disable\"", "name=\"confirm\"", "Create category"] {
        assert!(!page.body.contains(control), "a member sees no {control}");
    }
    let model = ui.get("/ui/models/p").body;
    assert!(!model.contains("/consent\""), "a member sees no consent mapping form");
    // the forms are not shown, but a forged post with the member's own CSRF token is refused
    let csrf = ui.csrf("/ui/");
    let create = ui.post("/ui/consent-categories", &[("csrf", &csrf), ("id", "C0009"), ("name", "Sales")]);
    assert_eq!(create.status, 403);
    assert!(create.body.contains("only owners"), "{}", create.body);
    let disable = ui.post("/ui/consent-categories/C0004/disable", &[("csrf", &csrf), ("confirm", "Advertising")]);
    assert_eq!(disable.status, 403);
    let edit = ui.post("/ui/consent-categories/C0004", &[("csrf", &csrf), ("name", "Hacked")]);
    assert_eq!(edit.status, 403);
    let consent = ui.post("/ui/models/p/consent", &[("csrf", &csrf), ("map:C0004", "email")]);
    assert_eq!(consent.status, 403);
    let (_, c) = api(&s, "GET", "/api/v1/consent-categories/C0004", None);
    assert_eq!((c["name"].as_str(), c["enabled"].as_bool()), (Some("Advertising"), Some(true)));
    assert_eq!(api(&s, "GET", "/api/v1/consent-categories/C0009", None).0, 404);
    assert_eq!(api(&s, "GET", "/api/v1/models/p", None).1["consent"], json!({"C0004": "ads"}));
}

#[test]
fn hostile_names_and_values_render_inert() {
    let s = server();
    let mut ui = Ui::new(&s.url);
    ui.login(&s.token);
    let csrf = ui.csrf("/ui/consent-categories");
    let evil = "<script>x()</script>"; // 20 characters: a valid name
    let a =
        ui.post("/ui/consent-categories", &[("csrf", &csrf), ("id", "C0666"), ("name", evil), ("destinations", "ads")]);
    assert_eq!(a.status, 303);
    assert_eq!(api(&s, "GET", "/api/v1/consent-categories/C0666", None).1["name"], evil);
    // a destination name an owner set, an event's fields and a warehouse value, all hostile
    let (st, _) = api(
        &s,
        "PUT",
        "/api/v1/destinations/crm",
        Some(json!({"id": "crm", "name": "<img src=x onerror=alert(1)>", "kind": "webhook",
                    "settings": {"url": format!("{}/crm", s.rx.url())}})),
    );
    assert_eq!(st, 200);
    let hostile = json!({"userId": "<b>u</b>", "event": "<script>alert(2)</script>", "messageId": "h1",
                         "context": {"consent": {"categoryPreferences": {"C0004": false, "<i>": true}}}});
    assert_eq!(s.post("/v1/track", &hostile).0, 200);
    s.settle();
    for path in
        ["/ui/consent-categories", "/ui/models/p", "/ui/destinations", "/ui/debugger/web", "/ui/", "/ui/audit-log"]
    {
        let body = ui.get(path).body;
        for raw in ["<script>x()", "<script>alert", "<img src=x", "<b>u</b>", "<i>"] {
            assert!(!body.contains(raw), "{path} renders {raw} raw");
        }
    }
    let cats = ui.get("/ui/consent-categories").body;
    assert!(cats.contains("&lt;script&gt;x()&lt;/script&gt;"), "the name is shown, escaped");
    let model = ui.get("/ui/models/p").body;
    assert!(model.contains("&lt;script&gt;alert(3)&lt;/script&gt;"), "the preview shows the value escaped");
    let dbg = ui.get("/ui/debugger/web").body;
    assert!(dbg.contains("&lt;script&gt;alert(2)&lt;/script&gt;"));
}

fn wait_run(ui: &Ui, model: &str) -> Value {
    let t = Instant::now();
    loop {
        let p: Value = serde_json::from_str(&ui.get(&format!("/ui/models/{model}/progress")).body).unwrap();
        if p["run_id"].as_i64().unwrap_or(0) > 0 && p["running"] == false {
            return p;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "the sync did not finish: {p}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_model_page_maps_consent_through_the_api_and_shows_a_syncs_funnel() {
    let s = server();
    let mut ui = Ui::new(&s.url);
    ui.login(&s.token);
    let page = ui.get("/ui/models/p").body;
    // the SQL, the preview's real columns in the picker, the consent settings check
    assert!(page.contains("select * from p"));
    for col in ["<option value=\"email\"", "<option value=\"analytics\"", "<option value=\"ads\" selected"] {
        assert!(page.contains(col), "{col}");
    }
    assert!(page.contains("not mapped: nothing from this model flows to crm"), "{page}");
    assert!(page.contains("This model has not synced yet"), "an empty state says what to do");
    let csrf = ui.csrf("/ui/models/p");
    // a column the model does not have is refused by the API's change path, with its message
    ui.post("/ui/models/p/consent", &[("csrf", &csrf), ("map:C0004", "ads"), ("map:C0002", "nope")]);
    assert!(ui.get("/ui/models/p").body.contains("nope"), "the refusal names the column");
    assert_eq!(api(&s, "GET", "/api/v1/models/p", None).1["consent"], json!({"C0004": "ads"}));
    let a = ui.post("/ui/models/p/consent", &[("csrf", &csrf), ("map:C0004", "ads"), ("map:C0002", "analytics")]);
    assert_eq!(a.status, 303);
    assert_eq!(api(&s, "GET", "/api/v1/models/p", None).1["consent"], json!({"C0004": "ads", "C0002": "analytics"}));
    assert!(ui.get("/ui/models/p").body.contains("match the ones configured in the workspace"));
    // run a sync from the page (the destinations answer slowly): its progress endpoint says it
    // runs, then that it is done
    s.rx.set_delay(Duration::from_millis(300));
    let started = ui.post("/ui/models/p/sync", &[("csrf", &csrf)]);
    assert_eq!(started.status, 303);
    let t = Instant::now();
    let running = loop {
        let p: Value = serde_json::from_str(&ui.get("/ui/models/p/progress").body).unwrap();
        if p["running"] == true {
            break p;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "never seen running: {p}");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(running["run_id"].as_i64().unwrap() >= 0, "{running}");
    let p = wait_run(&ui, "p");
    s.rx.set_delay(Duration::ZERO);
    assert_eq!(p["status"], "ok", "{p}");
    let page = ui.get("/ui/models/p").body;
    assert!(page.contains("Delivery overview of run #"), "{page}");
    assert!(page.contains("Withheld: Advertising (C0004)") && page.contains("Withheld: Analytics (C0002)"));
    assert!(page.contains("<svg"), "the funnel is SVG");
    assert!(page.contains("FILTERED_BY_END_USER_CONSENT"));
    // what the funnel says is what the destinations got: ads 1 and 3, crm 1 and 2
    let ids = |path: &str| {
        let mut v: Vec<String> = s.rx.items(path).iter().map(|i| i["id"].as_str().unwrap().to_string()).collect();
        v.sort();
        v
    };
    assert_eq!((ids("/ads"), ids("/crm")), (vec!["1".to_string(), "3".into()], vec!["1".to_string(), "2".into()]));
    let home = ui.get("/ui/").body;
    assert!(home.contains("Advertising (C0004)"), "home shows what consent withheld today: {home}");
    assert!(home.contains("1 sync run today: 4 records delivered, 0 failed, 2 withheld by consent."), "{home}");
    assert!(ui.get("/ui/usage").body.contains("CRM"));
}

#[test]
fn the_debugger_shows_a_withheld_event_and_a_profile_its_conflict() {
    let s = server();
    let mut ui = Ui::new(&s.url);
    ui.login(&s.token);
    assert!(ui.get("/ui/debugger/web").body.contains("No events yet"));
    let consent = |user: &str, ad: bool, ts: &str, mid: &str| {
        json!({"userId": user, "event": "Segment Consent Preference Updated", "messageId": mid, "timestamp": ts,
               "context": {"consent": {"categoryPreferences": {"C0004": ad, "C0002": true}}}})
    };
    assert_eq!(s.post("/v1/track", &consent("a", true, "2024-01-01T00:00:00Z", "c1")).0, 200);
    assert_eq!(s.post("/v1/track", &consent("b", false, "2024-01-02T00:00:00Z", "c2")).0, 200);
    assert_eq!(s.post("/v1/alias", &json!({"previousId": "b", "userId": "a", "messageId": "al"})).0, 200);
    s.settle();
    let dbg = ui.get("/ui/debugger/web").body;
    assert!(dbg.contains("Withheld by consent: <strong>Advertising (C0004)</strong> not consented"), "{dbg}");
    assert!(dbg.contains("Consent allows it"), "{dbg}");
    let t = Instant::now();
    loop {
        let a = ui.get("/ui/profiles/b");
        if a.status == 200 && a.body.contains("Consent conflict") {
            assert!(a.body.contains("Advertising (C0004)"));
            assert!(a.body.contains(">conflict<"));
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "no conflict shown: {}", a.body);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(ui.get("/ui/debugger/nope").status, 404);
}

#[test]
fn the_ui_is_served_on_the_private_side_only() {
    let s = server_with(|c| c.admin_listen = Some("127.0.0.1:0".into()));
    let public = Ui::new(&s.url);
    assert_eq!(public.get("/ui/login").status, 404);
    assert_eq!(public.get("/ui/").status, 404);
    assert_eq!(public.get("/ui/assets/ui.js").status, 404);
    let mut admin = Ui::new(s.admin_url.as_deref().unwrap());
    assert_eq!(admin.get("/ui/login").status, 200);
    assert_eq!(admin.login(&s.token).status, 303);
    assert_eq!(admin.get("/ui/").status, 200);
    let js = admin.get("/ui/assets/ui.js");
    assert_eq!(js.status, 200);
    assert!(js.body.contains("progressUrl"));
    assert!(admin.get("/ui/assets/ui.css").body.contains(".badge"));
}

#[test]
fn empty_pages_tell_a_newcomer_what_to_do_next() {
    let s = common::start("");
    let mut ui = Ui::new(&s.url);
    ui.login(&s.token);
    let home = ui.get("/ui/").body;
    assert!(home.contains("Welcome to Sluice") && home.contains("sluice quickstart"), "{home}");
    assert!(ui.get("/ui/consent-categories").body.contains("No consent categories yet"));
    assert!(ui.get("/ui/models").body.contains("No models yet"));
    assert!(ui.get("/ui/destinations").body.contains("No destinations yet"));
    assert!(ui.get("/ui/usage").body.contains("No usage yet"));
    assert!(ui.get("/ui/debugger/web").body.contains("No events yet"));
    assert_eq!(ui.get("/ui/models/nope").status, 404);
    // an unknown page under /ui/ is a page too, not a JSON error
    let missing = ui.get("/ui/nope");
    assert_eq!(missing.status, 404);
    assert!(missing.body.contains("No such page"));
}

#[test]
fn preview_impact_shows_the_what_if_before_the_owner_confirms() {
    let s = server();
    let mut ui = Ui::new(&s.url);
    ui.login(&s.token);
    let page = ui.get("/ui/consent-categories").body;
    assert!(page.contains("formaction=\"/ui/consent-categories/C0004/preview\""), "the forms offer a preview");
    assert!(ui.get("/ui/models/p").body.contains("formaction=\"/ui/models/p/consent/preview\""));
    let csrf = ui.csrf("/ui/consent-categories");
    let audit = || api(&s, "GET", "/api/v1/audit-log", None).1["items"].as_array().unwrap().len();
    let audit_before = audit();

    // the consent mapping: C0004 and C0002 from `analytics` (1, 1, 0): ads keeps 1, gains 2, loses 3;
    // crm (C0002, unmapped before: R3) gains 1 and 2
    let form = [("csrf", csrf.as_str()), ("map:C0004", "analytics"), ("map:C0002", "analytics")];
    let a = ui.post("/ui/models/p/consent/preview", &form);
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body.contains("id=\"what-if\""), "{}", a.body);
    let row = |body: &str, dest: &str| -> String {
        let at = body
            .find(&format!("<td>{dest}</td><td>model <code>p</code>"))
            .unwrap_or_else(|| panic!("no {dest} row: {body}"));
        body[at..at + body[at..].find("</tr>").unwrap()].to_string()
    };
    let ads = row(&a.body, "ads");
    assert!(ads.contains("data-gains=\"1\"") && ads.contains("data-loses=\"1\""), "{ads}");
    let crm = row(&a.body, "crm");
    assert!(crm.contains("data-gains=\"2\"") && crm.contains("data-loses=\"0\""), "{crm}");
    assert_eq!(api(&s, "GET", "/api/v1/models/p", None).1["consent"], json!({"C0004": "ads"}), "nothing changed yet");
    assert_eq!(audit(), audit_before);
    // the confirm form carries the same values and the CSRF token
    assert!(a.body.contains("action=\"/ui/models/p/consent\""), "{}", a.body);
    assert!(a.body.contains("name=\"map:C0004\" value=\"analytics\"") && a.body.contains(&csrf));
    let done = ui.post("/ui/models/p/consent", &form);
    assert_eq!(done.status, 303);
    assert_eq!(
        api(&s, "GET", "/api/v1/models/p", None).1["consent"],
        json!({"C0004": "analytics", "C0002": "analytics"})
    );

    // disabling Advertising: ads gains row 3 (refused Analytics... now the C0004 column)
    let a = ui.post("/ui/consent-categories/C0004/preview", &[("csrf", &csrf), ("op", "disable")]);
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(row(&a.body, "ads").contains("data-gains=\"1\""), "{}", a.body);
    assert!(a.body.contains("action=\"/ui/consent-categories/C0004/disable\"") && a.body.contains("name=\"confirm\""));
    assert_eq!(api(&s, "GET", "/api/v1/consent-categories/C0004", None).1["enabled"], true, "not before confirming");
    ui.post("/ui/consent-categories/C0004/disable", &[("csrf", &csrf), ("confirm", "Advertising")]);
    assert_eq!(api(&s, "GET", "/api/v1/consent-categories/C0004", None).1["enabled"], false);

    // an edit (remap C0002 to ads too) previews, hostile values stay inert, a member is refused
    let a = ui.post(
        "/ui/consent-categories/C0002/preview",
        &[("csrf", &csrf), ("name", "<b>x</b>"), ("destinations", "crm"), ("destinations", "ads")],
    );
    assert_eq!(a.status, 200);
    assert!(!a.body.contains("<b>x</b>") && a.body.contains("&lt;b&gt;x&lt;/b&gt;"));
    let no_csrf = ui.post("/ui/consent-categories/C0004/preview", &[("op", "disable")]);
    assert_eq!(no_csrf.status, 403);
    let member = member_token(&s);
    let mut m = Ui::new(&s.url);
    m.login(&member);
    let mcsrf = m.csrf("/ui/");
    assert_eq!(m.post("/ui/consent-categories/C0002/preview", &[("csrf", &mcsrf), ("op", "disable")]).status, 403);
    assert_eq!(m.post("/ui/models/p/consent/preview", &[("csrf", &mcsrf), ("map:C0004", "ads")]).status, 403);
}

#[test]
fn privacy_requests_owners_make_one_with_the_form_members_read_and_forged_posts_are_refused() {
    let s = server();
    let mut owner = Ui::new(&s.url);
    owner.login(&s.token);
    let page = owner.get("/ui/privacy-requests");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("No privacy requests yet") && page.body.contains("href=\"/ui/privacy-requests\""));
    let csrf = owner.csrf("/ui/privacy-requests");
    // without the CSRF token: refused, nothing stored
    let forged = owner.post(
        "/ui/privacy-requests",
        &[("regulationType", "SUPPRESS_ONLY"), ("subjectType", "USER_ID"), ("subjectIds", "u1")],
    );
    assert_eq!(forged.status, 403);
    let made = owner.post(
        "/ui/privacy-requests",
        &[
            ("csrf", &csrf),
            ("regulationType", "SUPPRESS_WITH_DELETE"),
            ("subjectType", "USER_ID"),
            ("subjectIds", "u1\n<script>x</script>\n"),
        ],
    );
    assert_eq!((made.status, made.location.as_deref()), (303, Some("/ui/privacy-requests")));
    let page = owner.get("/ui/privacy-requests").body;
    assert!(page.contains("SUPPRESS_WITH_DELETE") && page.contains("made."), "{page}");
    assert!(page.contains("&lt;script&gt;x&lt;/script&gt;") && !page.contains("<script>x"), "rendered inert");
    for d in ["ads", "crm"] {
        assert!(page.contains(d), "each destination's status: {page}");
    }
    // bad input comes back as a message naming the field
    let bad = owner.post(
        "/ui/privacy-requests",
        &[("csrf", &csrf), ("regulationType", "SUPPRESS_ONLY"), ("subjectType", "USER_ID"), ("subjectIds", "")],
    );
    assert_eq!(bad.status, 303);
    assert!(owner.get("/ui/privacy-requests").body.contains("subjectIds"));
    let (_, list) = api(&s, "GET", "/api/v1/regulations", None);
    assert_eq!(list["data"]["regulations"].as_array().unwrap().len(), 1);
    assert_eq!(list["data"]["regulations"][0]["subjectIds"], json!(["u1", "<script>x</script>"]));

    // a member reads, sees no form, and a forged post with their own CSRF token is refused
    let member = member_token(&s);
    let mut ui = Ui::new(&s.url);
    ui.login(&member);
    let page = ui.get("/ui/privacy-requests").body;
    assert!(page.contains("You are a member") && page.contains("SUPPRESS_WITH_DELETE"));
    assert!(!page.contains("Make the request"));
    let csrf = ui.csrf("/ui/");
    let forged = ui.post(
        "/ui/privacy-requests",
        &[("csrf", &csrf), ("regulationType", "UNSUPPRESS"), ("subjectType", "USER_ID"), ("subjectIds", "u1")],
    );
    assert_eq!(forged.status, 403);
    assert!(forged.body.contains("only owners may make privacy requests"), "{}", forged.body);
    let (_, list) = api(&s, "GET", "/api/v1/regulations", None);
    assert_eq!(list["data"]["regulations"].as_array().unwrap().len(), 1);
}

#[test]
fn firing_alerts_show_on_the_home_page_the_alerts_page_and_the_api() {
    let slack = sluice_testkit::Receiver::start();
    let s = start_cfg(
        warehouse_dir(
            "create table p(id integer, email text, ads);
             insert into p values (1,'alice@example.com',1),(2,'bob@example.com',1);",
        ),
        "{id: dwh, kind: sqlite, path: w.db}",
        &format!(
            "workspace: {{alert_webhook: '{}/services/T/B/slacksecret'}}
destinations:\n{}{}consent_categories: [{{id: C0004, name: Advertising, destinations: [ads]}}]
models: [{{id: p, source: dwh, sql: select * from p, unique_id: id, consent: {{C0004: ads}}, mappings: [{{destination: ads}}]}}]
alerts:
  - {{id: p-failed, on: failed_sync, model: p}}
  - {{id: crm-stream, on: failed_sync, destination: crm, window_minutes: 5}}
",
            slack.url(),
            hook("ads", "Ads"),
            hook("crm", "CRM")
        ),
        |c| c.alert_interval_secs = 1,
    );
    s.rx.answer_path("/ads", sluice_testkit::Reply::Status(500));
    s.rx.answer_path("/crm", sluice_testkit::Reply::Status(503));
    let mut ui = Ui::new(&s.url);
    ui.login(&s.token);
    assert!(!ui.get("/ui/").body.contains("alerts-firing"), "nothing fires before anything ran");
    assert_eq!(api(&s, "POST", "/api/v1/models/p/syncs", None).0, 202);
    wait_run(&ui, "p");
    // an event to crm (no consent object: routed everywhere) whose deliveries fail
    let ev =
        json!({"type": "track", "event": "Signed Up", "userId": "u1", "properties": {"email": "carol@example.com"}});
    assert_eq!(s.post("/v1/track", &ev).0, 200);
    let t = Instant::now();
    let firing = loop {
        let (st, v) = api(&s, "GET", "/api/v1/alerts", None);
        assert_eq!(st, 200, "{v}");
        if v["firing"].as_array().unwrap().len() == 2 {
            break v;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "alerts did not fire: {v}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let subjects: Vec<&str> =
        firing["firing"].as_array().unwrap().iter().map(|f| f["subject"].as_str().unwrap()).collect();
    assert!(subjects.contains(&"model/p/ads") && subjects.contains(&"stream/crm"), "{subjects:?}");
    assert!(!firing.to_string().contains("slacksecret"), "the webhook is never shown: {firing}");
    assert_eq!(firing["alerts"][0]["webhook"], true);
    let home = ui.get("/ui/").body;
    let banner = home.find("alerts-firing").expect("the home page shows firing alerts");
    assert!(banner < home.find("Flowing today").unwrap(), "firing alerts come first");
    assert!(home.contains("p-failed") && home.contains("streaming → crm"), "{home}");
    let page = ui.get("/ui/alerts").body;
    assert!(page.contains("alert-history") && page.contains("model p → ads") && page.contains("crm-stream"), "{page}");
    assert!(!page.contains("slacksecret"));
    let t = Instant::now();
    while slack.requests().len() < 2 {
        assert!(t.elapsed() < Duration::from_secs(10), "Slack got {:?}", slack.requests());
        std::thread::sleep(Duration::from_millis(50));
    }
    // the alert thread keeps evaluating: no repeat while they keep firing
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(slack.requests().len(), 2, "{:#?}", slack.requests());
    for r in slack.requests() {
        let b = r.body.to_string();
        assert!(b.contains("FIRING"), "{b}");
        assert!(!b.contains("example.com") && !b.contains("Signed Up"), "no personal data in an alert: {b}");
    }
    // the sync recovers: resolved, shown and sent
    s.rx.clear_path("/ads");
    assert_eq!(api(&s, "POST", "/api/v1/models/p/syncs", None).0, 202);
    // (the progress of the first run may still read as finished: wait for the alert itself)
    let t = Instant::now();
    let v = loop {
        let (_, v) = api(&s, "GET", "/api/v1/alerts", None);
        if v["history"][0]["state"] == "resolved" {
            break v;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "the alert did not resolve: {v}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(v["history"][0]["alert"], "p-failed");
    let resolved_sent = || {
        slack
            .requests()
            .iter()
            .any(|r| r.body["text"].as_str().unwrap_or("").contains("RESOLVED Sluice alert `p-failed`"))
    };
    let t = Instant::now();
    while !resolved_sent() {
        assert!(t.elapsed() < Duration::from_secs(10), "Slack got {:#?}", slack.requests());
        std::thread::sleep(Duration::from_millis(50));
    }
    // a member reads alerts too; without a token: 401
    assert_eq!(common::call(&s, "GET", "/api/v1/alerts", Some(&member_token(&s)), None).0, 200);
    assert_eq!(common::call(&s, "GET", "/api/v1/alerts", None, None).0, 401);
}

#[test]
fn the_profile_page_proves_the_consent_each_record_went_out_under() {
    // a person Reverse ETL knows (no event source): delivered under Advertising=true, then the
    // warehouse says false; the proof keeps the consent AT delivery
    let dir = warehouse_dir(
        "create table p(id integer, email text, ads);
         insert into p values (1,'alice@example.com',1),(2,'bob@example.com',0);",
    );
    let w = dir.path().join("w.db");
    let s = start_cfg(
        dir,
        "{id: dwh, kind: sqlite, path: w.db}",
        &format!(
            "destinations:\n{}consent_categories: [{{id: C0004, name: Advertising, destinations: [ads]}}]
models: [{{id: p, source: dwh, sql: select * from p, unique_id: id, consent: {{C0004: ads}}, mappings: [{{destination: ads}}]}}]
",
            hook("ads", "Ads")
        ),
        |_| {},
    );
    let mut ui = Ui::new(&s.url);
    ui.login(&s.token);
    assert_eq!(api(&s, "POST", "/api/v1/models/p/syncs", None).0, 202);
    wait_run(&ui, "p");
    let page = ui.get("/ui/profiles/1");
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Proof of consent") && page.body.contains("proof-retl"), "{}", page.body);
    assert!(page.body.contains("delivered in run 1") && page.body.contains("C0004=true"), "{}", page.body);
    let refused = ui.get("/ui/profiles/2").body;
    assert!(refused.contains("withheld in run 1") && refused.contains("refused by C0004"), "{refused}");
    // consent withdrawn in the warehouse after delivery: the proof still shows what it went out under
    rusqlite::Connection::open(&w).unwrap().execute_batch("update p set ads = 0 where id = 1").unwrap();
    let page = ui.get("/ui/profiles/1").body;
    assert!(page.contains("delivered in run 1") && page.contains("C0004=true"), "{page}");
    // nobody: 404, saying so
    let none = ui.get("/ui/profiles/nobody");
    assert_eq!(none.status, 404);
    assert!(!none.body.contains("proof-retl"));
}
