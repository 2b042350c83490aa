//! Creating, replacing and removing sources, destinations and models (`PUT` / `DELETE`
//! `/api/v1/{sources,destinations,models}/{id}`), with the workspace file's own shapes. A
//! credential sent back as `"<set>"` keeps its stored value, so a client can round-trip a `GET`.
//! A model's consent mappings are consent management: only owners may change them.

use super::{Actor, ApiError, ControlState, ErrorBody};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::Value;
use sluice_core::{DestinationConfig, ModelConfig, SourceConfig};

const SET: &str = "<set>";

fn bad_body(e: serde_json::Error) -> ApiError {
    let msg = e.to_string();
    let field = msg.split('`').nth(1).filter(|_| msg.contains("field")).map(String::from);
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", msg, field.as_deref())
}

/// Puts the id from the path into the body (refusing a different one).
fn with_id(mut body: Value, id: &str) -> Result<Value, ApiError> {
    let obj = body.as_object_mut().ok_or_else(|| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", "the body must be a JSON object", None)
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

fn keep(new: &mut Option<String>, old: Option<&String>) {
    if new.as_deref() == Some(SET) {
        *new = old.cloned();
    }
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

/// Creates or replaces a source.
#[utoipa::path(put, path = "/api/v1/sources/{id}", params(("id" = String, Path, description = "Source id")), request_body = Object,
    responses((status = 400, body = ErrorBody), (status = 200, body = Object), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_source(
    State(s): State<ControlState>,
    actor: Actor,
    super::ApiPath(id): super::ApiPath<String>,
    super::ApiJson(body): super::ApiJson<Value>,
) -> Result<Json<Value>, ApiError> {
    let mut src: SourceConfig = serde_json::from_value(with_id(body, &id)?).map_err(bad_body)?;
    let old = s.current().sources.iter().find(|x| x.id == id).cloned();
    keep(&mut src.url, old.as_ref().and_then(|o| o.url.as_ref()));
    keep(&mut src.write_key, old.as_ref().and_then(|o| o.write_key.as_ref()));
    let key = id.clone();
    s.clone()
        .change(actor, move |ws| {
            replace(&mut ws.sources, |x| &x.id, &key, src);
            Ok(())
        })
        .await?;
    Ok(Json(saved(&s, "source", &id)))
}

/// Creates or replaces a destination.
#[utoipa::path(put, path = "/api/v1/destinations/{id}", params(("id" = String, Path, description = "Destination id")), request_body = Object,
    responses((status = 400, body = ErrorBody), (status = 200, body = Object), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_destination(
    State(s): State<ControlState>,
    actor: Actor,
    super::ApiPath(id): super::ApiPath<String>,
    super::ApiJson(body): super::ApiJson<Value>,
) -> Result<Json<Value>, ApiError> {
    let mut dest: DestinationConfig = serde_json::from_value(with_id(body, &id)?).map_err(bad_body)?;
    if let Some(old) = s.current().destinations.iter().find(|x| x.id == id) {
        for (k, v) in dest.settings.iter_mut() {
            if k == "headers" {
                if let (Value::Object(h), Some(Value::Object(oh))) = (&mut *v, old.settings.get("headers")) {
                    for (hk, hv) in h.iter_mut() {
                        if hv == SET {
                            *hv = oh.get(hk).cloned().unwrap_or(Value::Null);
                        }
                    }
                }
            } else if v == SET {
                *v = old.settings.get(k).cloned().unwrap_or(Value::Null);
            }
        }
    }
    let key = id.clone();
    s.clone()
        .change(actor, move |ws| {
            replace(&mut ws.destinations, |x| &x.id, &key, dest);
            Ok(())
        })
        .await?;
    Ok(Json(saved(&s, "destination", &id)))
}

/// Creates or replaces a model (its consent mappings only by owners).
#[utoipa::path(put, path = "/api/v1/models/{id}", params(("id" = String, Path, description = "Model id")), request_body = Object,
    responses((status = 400, body = ErrorBody), (status = 200, body = Object), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_model(
    State(s): State<ControlState>,
    actor: Actor,
    super::ApiPath(id): super::ApiPath<String>,
    super::ApiJson(body): super::ApiJson<Value>,
) -> Result<Json<Value>, ApiError> {
    let model: ModelConfig = serde_json::from_value(with_id(body, &id)?).map_err(bad_body)?;
    let old_consent = s.current().models.iter().find(|m| m.id == id).map(|m| m.consent.clone()).unwrap_or_default();
    if model.consent != old_consent {
        actor.owner()?;
    }
    let key = id.clone();
    s.clone()
        .change(actor, move |ws| {
            replace(&mut ws.models, |x| &x.id, &key, model);
            Ok(())
        })
        .await?;
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
    let Some(m) = ws.models.iter().find(|x| x.id == id) else { return Err(not_found("model", &id)) };
    if !m.consent.is_empty() {
        actor.owner()?;
    }
    s.change(actor, move |ws| {
        ws.models.retain(|x| x.id != id);
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
