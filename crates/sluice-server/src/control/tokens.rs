//! `/api/v1/tokens`: owners create, list and disable API tokens.

use super::{Actor, ApiError, ControlState, ErrorBody};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use sluice_state::{AuditEntry, Role, StateStore};
use utoipa::ToSchema;

/// Every token.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    /// The tokens (never the secrets).
    pub items: Vec<sluice_state::TokenRow>,
}

/// A token to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// Who will use it (shown in the audit log).
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// `owner` or `member`.
    #[schema(pattern = "^(owner|member)$")]
    pub role: String,
}

/// A created token: shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    /// The secret to send as `Authorization: Bearer ...`; it is stored only as a hash.
    pub token: String,
    /// Who uses it.
    pub name: String,
    /// Its role.
    pub role: String,
}

fn owners_only(actor: &Actor) -> Result<(), ApiError> {
    if actor.role != Role::Owner {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "only owners may manage tokens", None));
    }
    Ok(())
}

fn audit(
    store: &mut StateStore,
    actor: &Actor,
    action: &str,
    entity: String,
    after: serde_json::Value,
) -> Result<(), ApiError> {
    store
        .append_audit(&[AuditEntry {
            id: 0,
            at: chrono::Utc::now().to_rfc3339(),
            actor: format!("token:{}", actor.name),
            action: action.into(),
            kind: "token".into(),
            entity,
            before: None,
            after: Some(after),
        }])
        .map_err(ApiError::internal)
}

/// Lists tokens (owners only).
#[utoipa::path(get, path = "/api/v1/tokens",
    responses((status = 400, body = ErrorBody), (status = 200, body = TokenList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(State(s): State<ControlState>, actor: Actor) -> Result<Json<TokenList>, ApiError> {
    owners_only(&actor)?;
    let store = StateStore::open_at(&s.state).map_err(ApiError::internal)?;
    let items = store.tokens().map_err(ApiError::internal)?;
    Ok(Json(TokenList { items }))
}

/// Creates a token (owners only); the response is the only time the token is shown.
#[utoipa::path(post, path = "/api/v1/tokens", request_body = NewToken,
    responses((status = 400, body = ErrorBody), (status = 201, body = CreatedToken), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(s): State<ControlState>,
    actor: Actor,
    super::ApiJson(body): super::ApiJson<NewToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    owners_only(&actor)?;
    let role = Role::parse(&body.role).ok_or_else(|| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", "`role` must be owner or member", Some("role"))
    })?;
    if body.name.trim().is_empty() || body.name.len() > 100 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "`name` must be 1-100 characters",
            Some("name"),
        ));
    }
    let mut store = StateStore::open_at(&s.state).map_err(ApiError::internal)?;
    let token = store.create_token(&body.name, role).map_err(ApiError::internal)?;
    audit(
        &mut store,
        &actor,
        "create",
        body.name.clone(),
        serde_json::json!({"name": body.name, "role": role.as_str()}),
    )?;
    Ok((StatusCode::CREATED, Json(CreatedToken { token, name: body.name, role: role.as_str().into() })))
}

/// Disables a token (owners only).
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", params(("id" = i64, Path, description = "Token number")),
    responses((status = 400, body = ErrorBody), (status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn disable(
    State(s): State<ControlState>,
    actor: Actor,
    super::ApiPath(id): super::ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    owners_only(&actor)?;
    let mut store = StateStore::open_at(&s.state).map_err(ApiError::internal)?;
    if !store.disable_token(id).map_err(ApiError::internal)? {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no token {id}"), Some("id")));
    }
    audit(&mut store, &actor, "change", id.to_string(), serde_json::json!({"disabled": true}))?;
    Ok(StatusCode::NO_CONTENT)
}
