//! Consent routing of streaming events (R6–R8): read the consent object of a Segment-spec
//! event, then decide per destination under the workspace policy and the integrations object.

use crate::config::{DestinationConfig, MissingConsent, Policy, WorkspaceFile};
use crate::consent::{policy_passes, required_by_destination, required_categories};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The two fields a consent object may carry preferences in (R6).
pub const PREFERENCE_FIELDS: [&str; 2] = ["categoryPreferences", "consentPreferences"];

/// What an event says about consent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventConsent {
    /// No consent object, or an empty `context.consent` (R7): not restricted by consent.
    Missing,
    /// Category id -> consented; categories absent from the map count as false.
    Given(BTreeMap<String, bool>),
}

/// Reads the consent object of `event`. Returns the consent and validation warnings (a
/// non-boolean value, or a preferences field that is not an object, counts as false).
pub fn read_consent(event: &Value) -> (EventConsent, Vec<String>) {
    let mut warnings = Vec::new();
    let consent = event.get("context").and_then(|c| c.get("consent"));
    let fields: Vec<(&str, &Value)> =
        PREFERENCE_FIELDS.iter().filter_map(|f| consent.and_then(|c| c.get(*f)).map(|v| (*f, v))).collect();
    if fields.is_empty() {
        if consent.is_some_and(|c| !c.is_object() && !c.is_null()) {
            warnings.push("context.consent is not an object; ignored".into());
        }
        return (EventConsent::Missing, warnings);
    }
    // a category is true only where every present field says true (R6)
    let mut merged: Option<BTreeMap<String, bool>> = None;
    for (field, prefs) in fields {
        let mut this = BTreeMap::new();
        match prefs {
            Value::Object(map) => {
                for (k, v) in map {
                    match v {
                        Value::Bool(b) => {
                            this.insert(k.clone(), *b);
                        }
                        other => {
                            warnings.push(format!(
                                "context.consent.{field}.{k} is {other}, not a boolean: counted as false"
                            ));
                            this.insert(k.clone(), false);
                        }
                    }
                }
            }
            other => warnings.push(format!("context.consent.{field} is {other}, not an object: every category false")),
        }
        merged = Some(match merged {
            None => this,
            Some(prev) => {
                prev.into_iter().map(|(k, v)| (k.clone(), v && this.get(&k).copied().unwrap_or(false))).collect()
            }
        });
    }
    (EventConsent::Given(merged.unwrap_or_default()), warnings)
}

/// Why an event does or does not reach a destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Deliver it; `metadata` is the integrations object's entry for the destination, if an object.
    Deliver {
        /// Per-destination metadata from the integrations object.
        metadata: Option<Value>,
    },
    /// Consent withholds it; the categories that refused (discard code FILTERED_BY_END_USER_CONSENT).
    Withheld {
        /// Refusing category ids.
        categories: Vec<String>,
    },
    /// The integrations object turned the destination off.
    TurnedOff,
    /// The destination is disabled.
    Disabled,
}

/// One destination's routing, computed once per workspace: whether it is enabled, the name the
/// integrations object uses, and the enabled categories it requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationPlan {
    enabled: bool,
    name: String,
    policy: Policy,
    required: Vec<String>,
}

impl DestinationPlan {
    /// The plan of `dest` in `ws`.
    pub fn new(ws: &WorkspaceFile, dest: &DestinationConfig) -> Self {
        Self {
            enabled: dest.enabled,
            name: dest.display_name().to_string(),
            policy: dest.consent_policy.unwrap_or(ws.workspace.policy),
            required: required_categories(ws, &dest.id).into_iter().map(String::from).collect(),
        }
    }

    /// The enabled categories the destination requires (empty: R1, unrestricted).
    pub fn required(&self) -> &[String] {
        &self.required
    }

    /// The plans of every destination of `ws`, in order, in time linear in the workspace's size
    /// (categories are indexed by destination once, not searched per destination).
    pub fn all(ws: &WorkspaceFile) -> Vec<Self> {
        let mut required = required_by_destination(ws);
        ws.destinations
            .iter()
            .map(|d| Self {
                enabled: d.enabled,
                name: d.display_name().to_string(),
                policy: d.consent_policy.unwrap_or(ws.workspace.policy),
                required: required.remove(d.id.as_str()).unwrap_or_default().into_iter().map(String::from).collect(),
            })
            .collect()
    }

    /// Decides one event. `consent` is the event's consent after the workspace's
    /// `missing_consent` setting was applied (see [`effective_consent`]).
    pub fn route(&self, consent: &EventConsent, integrations: Option<&Map<String, Value>>) -> Route {
        if !self.enabled {
            return Route::Disabled;
        }
        if let (EventConsent::Given(prefs), false) = (consent, self.required.is_empty()) {
            let ok = |c: &&String| prefs.get(*c).copied().unwrap_or(false);
            let pass = policy_passes(self.policy, self.required.iter().map(|c| ok(&c)));
            if !pass {
                return Route::Withheld { categories: self.required.iter().filter(|c| !ok(c)).cloned().collect() };
            }
        }
        // R8: the integrations object only narrows what consent allows
        let Some(integrations) = integrations else { return Route::Deliver { metadata: None } };
        match integrations.get(&self.name) {
            Some(Value::Bool(false)) => Route::TurnedOff,
            Some(Value::Object(meta)) => Route::Deliver { metadata: Some(Value::Object(meta.clone())) },
            Some(Value::Bool(true)) => Route::Deliver { metadata: None },
            _ => match integrations.get("All") {
                Some(Value::Bool(false)) => Route::TurnedOff,
                _ => Route::Deliver { metadata: None },
            },
        }
    }
}

/// Decides one destination for one event (see [`DestinationPlan`], which the router keeps
/// instead of recomputing the plan per event).
pub fn route(
    ws: &WorkspaceFile,
    dest: &DestinationConfig,
    consent: &EventConsent,
    integrations: Option<&Map<String, Value>>,
) -> Route {
    DestinationPlan::new(ws, dest).route(consent, integrations)
}

/// Applies `missing_consent` (R7) to an event's consent: `allow` leaves a missing object
/// unrestricted; `profile` uses the consent stored on the sender's profile when it has any
/// (`"conflict"` and never-collected categories count as false); `block` treats it as empty.
pub fn effective_consent(
    mode: MissingConsent,
    consent: EventConsent,
    profile: Option<&BTreeMap<String, bool>>,
) -> EventConsent {
    match (consent, mode) {
        (c @ EventConsent::Given(_), _) => c,
        (EventConsent::Missing, MissingConsent::Allow) => EventConsent::Missing,
        (EventConsent::Missing, MissingConsent::Block) => EventConsent::Given(BTreeMap::new()),
        (EventConsent::Missing, MissingConsent::Profile) => match profile {
            Some(p) if !p.is_empty() => EventConsent::Given(p.clone()),
            _ => EventConsent::Missing,
        },
    }
}

/// R14, Global Privacy Control: an event sent with `Sec-GPC: 1` counts the source's
/// `gpc_refuses` categories as refused, whatever its consent object says. `consent` is the
/// consent the event routes by (after `missing_consent`); `categories` are every category id of
/// the workspace. A missing consent (R7: not restricted) becomes every category granted but the
/// refused ones, so only those are withheld.
pub fn apply_gpc(consent: EventConsent, refused: &[String], categories: &[String]) -> EventConsent {
    if refused.is_empty() {
        return consent;
    }
    let mut prefs = match consent {
        EventConsent::Given(p) => p,
        EventConsent::Missing => categories.iter().map(|c| (c.clone(), true)).collect(),
    };
    for c in refused {
        prefs.insert(c.clone(), false);
    }
    EventConsent::Given(prefs)
}

#[cfg(test)]
mod tests;
