//! Creating, replacing and removing sources, destinations and models (`PUT` / `DELETE`
//! `/api/v1/{sources,destinations,models}/{id}`), with the workspace file's own shapes. A
//! credential sent back as `"<set>"` (and a URL sent back as `GET` showed it, credentials
//! redacted) keeps its stored value, so a client can round-trip a `GET`, unless the address
//! changes: a destination whose kind or an address setting its kind declares (`url`, `path`,
//! ...) changes, or a source whose kind, `tls`, `ca_file` or `path` changes, drops its stored
//! credentials; new ones must come with the change. Credentials are found by the one finder,
//! [`sluice_core::credentials`]. Who may change what: [`super::roles`].

use super::{Actor, ApiError, ControlState, ErrorBody};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::Value;
use sluice_core::credentials::{self, for_each_in_destination, for_each_in_source, Credential, CredentialKind, Keep};
use sluice_core::{Catalog, DestinationConfig, ModelConfig, SourceConfig, SET};
use std::collections::BTreeMap;

/// Reads a workspace-file object from a body; a refusal names the field at fault
/// (`statement_timeout_secs`, `mappings[0].on`, an unknown or missing field).
fn from_body<T: serde::de::DeserializeOwned>(body: Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(body).map_err(|e| {
        let msg = e.inner().to_string();
        let named = msg.split('`').nth(1).filter(|_| msg.contains("field")).map(String::from);
        let path = e.path().to_string();
        let field = match (path.as_str(), named) {
            (".", Some(n)) => n,
            (".", None) => "body".to_string(),
            (p, Some(n)) if msg.contains("missing field") => format!("{p}.{n}"),
            (p, _) => p.to_string(),
        };
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", format!("{field}: {msg}"), Some(&field))
    })
}

/// Puts the id from the path into the body (refusing a different one).
fn with_id(mut body: Value, id: &str) -> Result<Value, ApiError> {
    let obj = body.as_object_mut().ok_or_else(|| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", "the body must be a JSON object", Some("body"))
    })?;
    match obj.get("id") {
        Some(Value::String(s)) if s != id => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                "`id` differs from the path",
                Some("id"),
            ))
        }
        _ => {}
    }
    obj.insert("id".into(), Value::String(id.into()));
    Ok(body)
}

fn unset(field: &str, why: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid",
        format!("`{field}` holds `<set>` but {why}: send the credentials again"),
        Some(field),
    )
}

/// Replaces `"<set>"` by the stored value at the same field (`stored`), or removes it when
/// nothing is stored there (the credential must then come again).
fn keep_stored(c: &Credential, v: &mut String, stored: &BTreeMap<String, String>) -> Keep {
    if v != SET {
        return Keep::Yes;
    }
    match stored.get(&c.field) {
        Some(o) => {
            *v = o.clone();
            Keep::Yes
        }
        None => Keep::No,
    }
}

/// Resolves `"<set>"` in a source's credentials against the stored ones: kept while the
/// address is the same ([`SourceConfig::same_address`]), else emptied (a postgres source then
/// needs its `url` sent again, which validation says).
fn source_secrets(src: &mut SourceConfig, old: Option<&SourceConfig>) {
    let stored = old
        .filter(|o| o.same_address(src))
        .map(|o| credentials::values(o, |s, f| for_each_in_source(s, f)))
        .unwrap_or_default();
    for_each_in_source(src, &mut |c, v| keep_stored(c, v, &stored));
}

/// Resolves `"<set>"` (and URLs as `GET` redacted them) in a destination's credentials (as its
/// kind declares them) against the stored ones: kept while the kind and every address setting
/// stay; else dropped. A URL that still holds `<set>` but is not the stored one redacted is
/// refused.
fn destination_secrets(dest: &mut DestinationConfig, old: Option<&DestinationConfig>) -> Result<(), ApiError> {
    let catalog = &sluice_destinations::REGISTRY;
    let walk = |d: &mut DestinationConfig, f: &mut credentials::Visitor<'_>| for_each_in_destination(d, catalog, f);
    let old_values = old.map(|o| credentials::values(o, walk)).unwrap_or_default();
    for_each_in_destination(dest, catalog, &mut |c, v| {
        if let (CredentialKind::Url, Some(o)) = (c.kind, old_values.get(&c.field)) {
            if v != o && *v == sluice_core::redact_url(o) {
                *v = o.clone();
            }
        }
        Keep::Yes
    });
    let info = catalog.kind(&dest.kind);
    let same = old.filter(|o| {
        o.kind == dest.kind
            && o.settings
                .keys()
                .chain(dest.settings.keys())
                .all(|k| !info.is_some_and(|i| i.is_address(k)) || o.settings.get(k) == dest.settings.get(k))
    });
    let stored = if same.is_some() { old_values } else { BTreeMap::new() };
    let mut refused = None;
    for_each_in_destination(dest, catalog, &mut |c, v| {
        let keep = keep_stored(c, v, &stored);
        if c.kind == CredentialKind::Url && (v.contains(SET) || v.contains("%3Cset%3E")) {
            refused.get_or_insert_with(|| unset(&c.field, "it does not match the stored URL"));
        }
        keep
    });
    refused.map_or(Ok(()), Err)
}

fn replace<T: Clone>(items: &mut Vec<T>, id_of: impl Fn(&T) -> &str, id: &str, new: T) -> bool {
    match items.iter().position(|x| id_of(x) == id) {
        Some(i) => {
            items[i] = new;
            false
        }
        None => {
            items.push(new);
            true
        }
    }
}

/// Creates or replaces a source (owners only: sources and write keys decide what comes in).
#[utoipa::path(put, path = "/api/v1/sources/{id}", params(("id" = String, Path, description = "Source id")), request_body = Object,
    responses((status = 400, body = ErrorBody), (status = 200, body = Object), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_source(
    State(s): State<ControlState>,
    actor: Actor,
    super::ApiPath(id): super::ApiPath<String>,
    super::ApiJson(body): super::ApiJson<Value>,
) -> Result<Json<Value>, ApiError> {
    let sent: SourceConfig = from_body(with_id(body, &id)?)?;
    let key = id.clone();
    s.clone()
        .change(actor, move |ws| {
            let mut src = sent.clone();
            source_secrets(&mut src, ws.sources.iter().find(|x| x.id == key));
            replace(&mut ws.sources, |x| &x.id, &key, src);
            Ok(())
        })
        .await?;
    Ok(Json(saved(&s, "source", &id)))
}

/// Creates or replaces a destination (members may only disable it or tune its delivery:
/// [`super::roles`]).
#[utoipa::path(put, path = "/api/v1/destinations/{id}", params(("id" = String, Path, description = "Destination id"), super::whatif::DryRun), request_body = Object,
    responses((status = 400, body = ErrorBody), (status = 200, body = Object, description = "the destination; with dry_run=true: {plan, warnings, what_if, allowed, refused, errors}, nothing changed"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_destination(
    State(s): State<ControlState>,
    actor: Actor,
    super::ApiPath(id): super::ApiPath<String>,
    super::ApiQuery(dry): super::ApiQuery<super::whatif::DryRun>,
    super::ApiJson(body): super::ApiJson<Value>,
) -> Result<Json<Value>, ApiError> {
    let sent: DestinationConfig = from_body(with_id(body, &id)?)?;
    let key = id.clone();
    let edit = move |ws: &mut sluice_core::WorkspaceFile| {
        let mut dest = sent.clone();
        destination_secrets(&mut dest, ws.destinations.iter().find(|x| x.id == key))?;
        replace(&mut ws.destinations, |x| &x.id, &key, dest);
        Ok(())
    };
    if dry.on() {
        return s.preview(actor, false, edit).await;
    }
    s.clone().change(actor, edit).await?;
    Ok(Json(saved(&s, "destination", &id)))
}

/// Creates or replaces a model (owner-only parts: [`super::roles`]).
#[utoipa::path(put, path = "/api/v1/models/{id}", params(("id" = String, Path, description = "Model id"), super::whatif::DryRun), request_body = Object,
    responses((status = 400, body = ErrorBody), (status = 200, body = Object, description = "the model; with dry_run=true: {plan, warnings, what_if, allowed, refused, errors}, nothing changed"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_model(
    State(s): State<ControlState>,
    actor: Actor,
    super::ApiPath(id): super::ApiPath<String>,
    super::ApiQuery(dry): super::ApiQuery<super::whatif::DryRun>,
    super::ApiJson(body): super::ApiJson<Value>,
) -> Result<Json<Value>, ApiError> {
    let model: ModelConfig = from_body(with_id(body, &id)?)?;
    let key = id.clone();
    let edit = move |ws: &mut sluice_core::WorkspaceFile| {
        replace(&mut ws.models, |x| &x.id, &key, model.clone());
        Ok(())
    };
    if dry.on() {
        return s.preview(actor, false, edit).await;
    }
    s.clone().change(actor, edit).await?;
    Ok(Json(saved(&s, "model", &id)))
}

/// The stored object, credentials redacted.
fn saved(s: &ControlState, kind: &str, id: &str) -> Value {
    let ws = s.current();
    let v = match kind {
        "source" => ws.sources.iter().find(|x| x.id == id).map(serde_json::to_value),
        "destination" => ws.destinations.iter().find(|x| x.id == id).map(serde_json::to_value),
        _ => ws.models.iter().find(|x| x.id == id).map(serde_json::to_value),
    };
    sluice_engine::plan::redact(kind, v.and_then(Result::ok).unwrap_or_else(|| Value::Object(Default::default())))
}

fn not_found(kind: &str, id: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no {kind} has the id `{id}`"), Some("id"))
}

fn in_use(what: &str, id: &str, by: Vec<String>) -> Result<(), ApiError> {
    if by.is_empty() {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "conflict",
        format!("{what} `{id}` is used by {}; change those first", by.join(", ")),
        Some("id"),
    ))
}

/// Removes a source that no model uses.
#[utoipa::path(delete, path = "/api/v1/sources/{id}", params(("id" = String, Path, description = "Source id")),
    responses((status = 400, body = ErrorBody), (status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_source(
    State(s): State<ControlState>,
    actor: Actor,
    super::ApiPath(id): super::ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let ws = s.current();
    if !ws.sources.iter().any(|x| x.id == id) {
        return Err(not_found("source", &id));
    }
    in_use("source", &id, ws.models.iter().filter(|m| m.source == id).map(|m| format!("model {}", m.id)).collect())?;
    s.change(actor, move |ws| {
        ws.sources.retain(|x| x.id != id);
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a destination that no mapping or category uses.
#[utoipa::path(delete, path = "/api/v1/destinations/{id}", params(("id" = String, Path, description = "Destination id")),
    responses((status = 400, body = ErrorBody), (status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_destination(
    State(s): State<ControlState>,
    actor: Actor,
    super::ApiPath(id): super::ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let ws = s.current();
    if !ws.destinations.iter().any(|x| x.id == id) {
        return Err(not_found("destination", &id));
    }
    let mut by: Vec<String> = ws
        .models
        .iter()
        .filter(|m| m.mappings.iter().any(|mp| mp.destination == id))
        .map(|m| format!("model {}", m.id))
        .collect();
    by.extend(
        ws.consent_categories
            .iter()
            .filter(|c| c.destinations.contains(&id))
            .map(|c| format!("consent category {}", c.id)),
    );
    in_use("destination", &id, by)?;
    s.change(actor, move |ws| {
        ws.destinations.retain(|x| x.id != id);
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a model (its checkpoints stay, should it come back).
#[utoipa::path(delete, path = "/api/v1/models/{id}", params(("id" = String, Path, description = "Model id")),
    responses((status = 400, body = ErrorBody), (status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_model(
    State(s): State<ControlState>,
    actor: Actor,
    super::ApiPath(id): super::ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let ws = s.current();
    if !ws.models.iter().any(|x| x.id == id) {
        return Err(not_found("model", &id));
    }
    s.change(actor, move |ws| {
        ws.models.retain(|x| x.id != id);
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
