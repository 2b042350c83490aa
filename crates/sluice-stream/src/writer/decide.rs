//! The pure part of routing one event: the profile's update by the event (traits, R9 consent,
//! R13 withdrawal) and the decision per destination (R6–R8, R14), with the debugger's record of
//! it. No I/O: the SQLite writer and the bus router ([`crate::bus::router`]) both call it
//! between their own reads and writes.

use super::{Prepared, Router, Stats, NONE};
use crate::person_delete::{self, PersonDelete};
use crate::store::{self, Stat};
use serde_json::{json, Value};
use sluice_core::events::{apply_gpc, effective_consent, EventConsent, Route};
use sluice_core::profiles::Profile;
use sluice_core::{MissingConsent, WorkspaceFile};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

/// A workspace's category ids, in order, with an index by id.
#[derive(Debug, Default)]
pub struct Categories {
    /// Every category id (R9 replaces each of them).
    pub ids: Vec<String>,
    /// Id -> position in `ids`.
    pub index: HashMap<String, usize>,
}

impl Categories {
    /// The categories of `ws`.
    pub fn of(ws: &WorkspaceFile) -> Self {
        let ids: Vec<String> = ws.consent_categories.iter().map(|c| c.id.clone()).collect();
        let index = ids.iter().enumerate().map(|(i, c)| (c.clone(), i)).collect();
        Self { ids, index }
    }
}

/// Appends the debugger's record of a decision. `under` (proof of consent, docs/PRIVACY.md)
/// is `,"consent":{...},"basis":"..."` for a destination that requires categories, else empty.
fn push_decision(out: &mut String, r: &Route, under: &str) {
    let at = out.len();
    match r {
        Route::Deliver { metadata: None } => out.push_str(r#"{"route":"deliver"}"#),
        Route::Deliver { metadata: Some(m) } => out.push_str(&json!({"route": "deliver", "metadata": m}).to_string()),
        Route::Withheld { categories } => out.push_str(
            &json!({"route": "withheld", "code": "FILTERED_BY_END_USER_CONSENT", "categories": categories}).to_string(),
        ),
        Route::TurnedOff => out.push_str(r#"{"route":"turned_off","reason":"integrations object"}"#),
        Route::Disabled => out.push_str(r#"{"route":"disabled"}"#),
    }
    if !under.is_empty() && matches!(r, Route::Deliver { .. } | Route::Withheld { .. }) && out.len() > at {
        out.pop(); // the closing brace
        out.push_str(under);
        out.push('}');
    }
}

/// The consent a decision was made under, for the destination requiring `required`:
/// `,"consent":{category: bool},"basis":"event|profile|block|none"` (`none`: no consent object,
/// not restricted, R7), plus `"gpc":true` when Global Privacy Control refused categories (R14).
fn consent_under(required: &[String], consent: &EventConsent, basis: &str, gpc: bool) -> String {
    if required.is_empty() {
        return String::new();
    }
    let mut out = String::from(",\"consent\":");
    match consent {
        EventConsent::Given(prefs) => {
            let m: serde_json::Map<String, Value> =
                required.iter().map(|c| (c.clone(), Value::Bool(prefs.get(c).copied().unwrap_or(false)))).collect();
            out.push_str(&Value::Object(m).to_string());
        }
        EventConsent::Missing => out.push_str("null"),
    }
    out.push_str(&format!(",\"basis\":\"{basis}\""));
    if gpc {
        out.push_str(",\"gpc\":true");
    }
    out
}

/// `json` with `context.consent.categoryPreferences` and `.consentPreferences` set to `prefs` for
/// every category (absent ones false); `None` if the event is not an object.
fn stamp_consent(
    json: &str,
    prefs: &std::collections::BTreeMap<String, bool>,
    categories: &[String],
) -> Option<String> {
    let mut e: Value = serde_json::from_str(json).ok()?;
    let all: serde_json::Map<String, Value> =
        categories.iter().map(|c| (c.clone(), Value::Bool(prefs.get(c).copied().unwrap_or(false)))).collect();
    let obj = e.as_object_mut()?;
    let context = obj.entry("context").or_insert_with(|| json!({}));
    if !context.is_object() {
        *context = json!({});
    }
    context["consent"] = json!({"categoryPreferences": all, "consentPreferences": all});
    Some(e.to_string())
}

/// Each destination's id as a JSON string.
pub(super) fn quoted_ids(ws: &WorkspaceFile) -> Vec<String> {
    ws.destinations.iter().map(|d| Value::String(d.id.clone()).to_string()).collect()
}

/// What [`Router::decide`] decided for one event.
pub(crate) struct Decided {
    /// The event as delivered, when routing stamped the consent it was routed under into it.
    pub stamped: Option<String>,
    /// The debugger's record: destination id -> decision (JSON object text).
    pub decisions: String,
    /// The ids of the destinations it goes to (JSON array text, `routes::encode`).
    pub routes: String,
    /// The positions (in the workspace's `destinations`) of the destinations it goes to.
    pub deliver: Vec<usize>,
}

/// An event's identifiers, as its profile links them, and what it does with the profile.
pub(crate) struct Idents<'e> {
    /// `userId`s (an alias's `previousId` when it was seen as a `userId`).
    pub users: Vec<&'e str>,
    /// `anonymousId`s (an alias's `previousId` otherwise).
    pub anon: Vec<&'e str>,
    /// The event changes the profile (traits, or a consent event with a consent object).
    pub writes: bool,
    /// Routing reads the profile's consent (no consent object under `missing_consent: profile`).
    pub reads: bool,
}

impl Idents<'_> {
    /// The one identifier of the common event, which neither reads nor changes its profile (only
    /// its existence matters): `(b'u' | b'a', id)`.
    pub(crate) fn only(&self) -> Option<(u8, &str)> {
        if self.users.len() + self.anon.len() != 1 || self.writes || self.reads {
            return None;
        }
        match (self.users.first(), self.anon.first()) {
            (Some(u), _) => Some((b'u', u)),
            (None, Some(a)) => Some((b'a', a)),
            (None, None) => None,
        }
    }
}

impl Router {
    /// The identifiers `event` links (an event that carries both ids, identify, alias or any
    /// call, links them); `is_user` says whether an alias's `previousId` was seen as a `userId`.
    pub(crate) fn idents<'e, E>(
        &self,
        event: &'e Prepared,
        is_user: impl FnOnce(&str) -> Result<bool, E>,
    ) -> Result<Idents<'e>, E> {
        let mut users: Vec<&str> = event.user_id.as_deref().into_iter().collect();
        let mut anon: Vec<&str> = event.anonymous_id.as_deref().into_iter().collect();
        if let Some(prev) = event.previous_id.as_deref() {
            if is_user(prev)? {
                users.push(prev);
            } else {
                anon.push(prev);
            }
        }
        let consent = &event.consent;
        let reads = *consent == EventConsent::Missing && self.ws.workspace.missing_consent == MissingConsent::Profile;
        let writes = event.traits.is_some() || (event.reserved && matches!(consent, EventConsent::Given(_)));
        Ok(Idents { users, anon, writes, reads })
    }

    /// Applies `event` to its resolved profile `p`: traits of an identify call, and the consent of
    /// the reserved consent event (R9, most recent by timestamp, ties by `seq`, asked for only
    /// then). Returns the destinations that must delete the person (R13) and the request.
    pub(crate) fn update_profile(
        &self,
        p: &mut Profile,
        event: &Prepared,
        left_out: usize,
        source: &str,
        seq: impl FnOnce() -> store::Result<u64>,
        notes: &mut Vec<String>,
    ) -> store::Result<Option<(Vec<String>, PersonDelete)>> {
        if left_out > 0 {
            tracing::warn!(source, left_out, "profile identifiers capped");
            notes.push(format!(
                "{left_out} identifier(s) or profile(s) not linked: a profile links at most {} identifiers",
                store::profiles::MAX_IDENTIFIERS
            ));
        }
        if let Some(traits) = &event.traits {
            let left_out = p.add_traits(traits);
            if !left_out.is_empty() {
                tracing::warn!(source, traits_left_out = left_out.len(), "profile traits capped");
                notes.push(format!(
                    "{} trait(s) not stored: a profile keeps at most {} traits and {} KB of them ({})",
                    left_out.len(),
                    sluice_core::profiles::MAX_TRAITS,
                    sluice_core::profiles::MAX_TRAITS_BYTES / 1024,
                    left_out.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
        let mut withdrawal = None;
        if let (true, EventConsent::Given(prefs)) = (event.reserved, &event.consent) {
            let seq = seq()?;
            let before = person_delete::stored(p);
            p.apply_consent_event(prefs, &self.categories.ids, &event.timestamp, seq);
            withdrawal = person_delete::on_consent_change(&self.ws, &before, p, &event.message_id);
            if let Some((targets, req)) = &withdrawal {
                tracing::info!(source, destinations = ?targets, categories = ?req.categories, "consent withdrawn: deletes queued");
            }
        }
        Ok(withdrawal)
    }

    /// Routes `event` to every destination of the workspace, under its own consent or, as the
    /// workspace's `missing_consent` says, the profile's `stored_consent` (R7); counts each
    /// decision in `stats` at `minute`.
    pub(crate) fn decide(
        &self,
        event: &Prepared,
        stored_consent: Option<BTreeMap<String, bool>>,
        minute: i64,
        stats: &mut Stats,
    ) -> Decided {
        let mut deliver = Vec::new();
        let consent = &event.consent;
        let missing = *consent == EventConsent::Missing;
        let mode = self.ws.workspace.missing_consent;
        // a given consent, or a missing one under `allow`, routes as it is: no copy
        let consent: Cow<EventConsent> = match (consent, mode) {
            (EventConsent::Given(_), _) | (EventConsent::Missing, MissingConsent::Allow) => Cow::Borrowed(consent),
            _ => Cow::Owned(effective_consent(mode, consent.clone(), stored_consent.as_ref())),
        };
        // what the consent below comes from (proof of consent)
        let basis = match (missing, consent.as_ref()) {
            (false, _) => "event",
            (true, EventConsent::Missing) => "none",
            (true, EventConsent::Given(_)) if mode == MissingConsent::Block => "block",
            (true, EventConsent::Given(_)) => "profile",
        };
        // R14: Global Privacy Control refuses its categories whatever the consent says
        let gpc = !event.gpc_refused.is_empty();
        let unrestricted = *consent == EventConsent::Missing;
        let consent: Cow<EventConsent> = if gpc {
            Cow::Owned(apply_gpc(consent.into_owned(), &event.gpc_refused, &self.categories.ids))
        } else {
            consent
        };
        // an event routed by the profile's consent (or blocked, R7), or under GPC, carries the
        // consent it was routed under, so no destination downstream (connections) takes it as
        // unrestricted. Under GPC without any consent, Sluice routes as if the other categories
        // were granted (R7), but downstream it claims no grant the person never gave: only
        // refusals are stamped (every category false), which restricts rather than widens.
        let stamped = match (consent.as_ref(), missing || gpc) {
            (EventConsent::Given(_), true) if gpc && unrestricted => {
                stamp_consent(&event.json, &Default::default(), &self.categories.ids)
            }
            (EventConsent::Given(prefs), true) => stamp_consent(&event.json, prefs, &self.categories.ids),
            _ => None,
        };
        let integrations = event.integrations.as_ref();
        let mut decisions = String::with_capacity(32 * self.quoted.len() + 2);
        decisions.push('{');
        let mut routes = String::with_capacity(16 * self.quoted.len() + 2);
        routes.push('[');
        for di in 0..self.ws.destinations.len() {
            let r = self.plans[di].route(&consent, integrations);
            let metric = match &r {
                Route::Deliver { .. } => {
                    deliver.push(di);
                    // routes::encode: a JSON array of the ids
                    if routes.len() > 1 {
                        routes.push(',');
                    }
                    routes.push_str(&self.quoted[di]);
                    Stat::Routed
                }
                Route::Withheld { categories } => {
                    for c in categories {
                        let ci = self.categories.index.get(c).copied().unwrap_or(NONE);
                        *stats.entry((minute, di, Stat::Withheld, ci)).or_default() += 1;
                    }
                    Stat::Withheld
                }
                Route::TurnedOff => Stat::TurnedOff,
                Route::Disabled => Stat::Disabled,
            };
            *stats.entry((minute, di, Stat::Received, NONE)).or_default() += 1;
            if !event.warnings.is_empty() {
                // R6: a non-boolean value or a preferences field that is not an object
                *stats.entry((minute, di, Stat::ConsentWarnings, NONE)).or_default() += 1;
            }
            *stats.entry((minute, di, metric, NONE)).or_default() += 1;
            if decisions.len() > 1 {
                decisions.push(',');
            }
            decisions.push_str(&self.quoted[di]);
            decisions.push(':');
            let under = consent_under(self.plans[di].required(), &consent, basis, gpc);
            push_decision(&mut decisions, &r, &under);
        }
        decisions.push('}');
        routes.push(']');
        Decided { stamped, decisions, routes, deliver }
    }
}
