//! `/api/v1/consent-categories`: owners create, edit, disable and remove; members read.

use super::whatif::DryRun;
use super::{Actor, ApiError, ControlState, ErrorBody, Page};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use sluice_core::CategoryConfig;
use utoipa::ToSchema;

/// A consent category.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Category {
    /// The CMP's key (case-sensitive).
    pub id: String,
    /// Name, 1–20 characters.
    pub name: String,
    /// Destination ids it governs.
    pub destinations: Vec<String>,
    /// Whether it is enforced.
    pub enabled: bool,
}

impl From<&CategoryConfig> for Category {
    fn from(c: &CategoryConfig) -> Self {
        Self { id: c.id.clone(), name: c.name.clone(), destinations: c.destinations.clone(), enabled: c.enabled }
    }
}

/// A page of categories.
#[derive(Debug, Serialize, ToSchema)]
pub struct CategoryPage {
    /// The categories.
    pub items: Vec<Category>,
    /// How many there are in all.
    pub total: usize,
    /// Skipped.
    pub offset: usize,
    /// Page size.
    pub limit: usize,
}

/// A new category.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCategory {
    /// The CMP's key: 1–34 characters, not starting with a digit, unique; no whitespace,
    /// control characters, commas, quotes or backslashes.
    #[schema(min_length = 1, max_length = 34, pattern = r#"^[^0-9\s,"'`\\][^\s,"'`\\]*$"#)]
    pub id: String,
    /// Name, 1–20 characters, unique.
    #[schema(min_length = 1, max_length = 20)]
    pub name: String,
    /// Destination ids it governs.
    #[serde(default)]
    pub destinations: Vec<String>,
    /// Whether it is enforced (default true).
    pub enabled: Option<bool>,
}

/// Changes to a category; absent fields stay.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CategoryChange {
    /// New name, 1–20 characters, unique.
    #[schema(min_length = 1, max_length = 20)]
    pub name: Option<String>,
    /// New destination ids.
    pub destinations: Option<Vec<String>>,
    /// Enable or disable.
    pub enabled: Option<bool>,
}

/// The category `id` of the live workspace.
fn find(s: &ControlState, id: &str) -> Result<Category, ApiError> {
    s.current().consent_categories.iter().find(|c| c.id == id).map(Category::from).ok_or_else(|| not_found(id))
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no consent category has the id `{id}`"), Some("id"))
}

/// Lists consent categories (owners and members).
#[utoipa::path(get, path = "/api/v1/consent-categories", params(Page),
    responses((status = 400, body = ErrorBody), (status = 200, body = CategoryPage), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(s): State<ControlState>,
    _actor: Actor,
    super::ApiQuery(p): super::ApiQuery<Page>,
) -> Result<Json<CategoryPage>, ApiError> {
    p.check()?;
    let all: Vec<Category> = s.current().consent_categories.iter().map(Category::from).collect();
    let (items, offset, limit) = p.window(&all);
    Ok(Json(CategoryPage { items, total: all.len(), offset, limit }))
}

/// One consent category (owners and members).
#[utoipa::path(get, path = "/api/v1/consent-categories/{id}", params(("id" = String, Path, description = "Category id")),
    responses((status = 400, body = ErrorBody), (status = 200, body = Category), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(
    State(s): State<ControlState>,
    _actor: Actor,
    super::ApiPath(id): super::ApiPath<String>,
) -> Result<Json<Category>, ApiError> {
    find(&s, &id).map(Json)
}

/// Creates a consent category (owners only).
#[utoipa::path(post, path = "/api/v1/consent-categories", request_body = NewCategory, params(DryRun),
    responses((status = 400, body = ErrorBody), (status = 201, body = Category), (status = 200, body = Object, description = "dry_run=true: {plan, warnings, what_if, allowed, refused, errors}; nothing changed"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(s): State<ControlState>,
    actor: Actor,
    super::ApiQuery(dry): super::ApiQuery<DryRun>,
    super::ApiJson(body): super::ApiJson<NewCategory>,
) -> Result<Response, ApiError> {
    if !dry.on() {
        actor.owner()?;
    }
    let cat = CategoryConfig {
        id: body.id,
        name: body.name,
        destinations: body.destinations,
        enabled: body.enabled.unwrap_or(true),
    };
    let out = Category::from(&cat);
    let edit = move |ws: &mut sluice_core::WorkspaceFile| {
        if ws.consent_categories.iter().any(|c| c.id == cat.id) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("a category with id `{}` exists", cat.id),
                Some("id"),
            ));
        }
        ws.consent_categories.push(cat.clone());
        Ok(())
    };
    if dry.on() {
        return Ok(s.preview(actor, true, edit).await?.into_response());
    }
    s.change(actor, edit).await?;
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// Changes a consent category: rename, remap destinations, enable or disable (owners only).
#[utoipa::path(patch, path = "/api/v1/consent-categories/{id}", params(("id" = String, Path, description = "Category id"), DryRun),
    request_body = CategoryChange,
    responses((status = 400, body = ErrorBody), (status = 200, body = Object, description = "the category (as GET answers it); with dry_run=true: {plan, warnings, what_if, allowed, refused, errors}, nothing changed"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update(
    State(s): State<ControlState>,
    actor: Actor,
    super::ApiPath(id): super::ApiPath<String>,
    super::ApiQuery(dry): super::ApiQuery<DryRun>,
    super::ApiJson(body): super::ApiJson<CategoryChange>,
) -> Result<Response, ApiError> {
    if !dry.on() {
        actor.owner()?;
    }
    let edit = edit_category(id.clone(), body);
    if dry.on() {
        return Ok(s.preview(actor, true, edit).await?.into_response());
    }
    s.change(actor, edit).await?;
    find(&s, &id).map(|c| Json(c).into_response())
}

/// The edit `update` makes to a workspace (the web UI previews the same edit).
pub(crate) fn edit_category(
    key: String,
    body: CategoryChange,
) -> impl Fn(&mut sluice_core::WorkspaceFile) -> Result<(), ApiError> + Send + 'static {
    move |ws| {
        let c = ws.consent_categories.iter_mut().find(|c| c.id == key).ok_or_else(|| not_found(&key))?;
        if let Some(n) = &body.name {
            c.name = n.clone();
        }
        if let Some(d) = &body.destinations {
            c.destinations = d.clone();
        }
        if let Some(e) = body.enabled {
            c.enabled = e;
        }
        Ok(())
    }
}

/// Removes a consent category (owners only). Models that map it must drop the mapping first.
#[utoipa::path(delete, path = "/api/v1/consent-categories/{id}", params(("id" = String, Path, description = "Category id"), DryRun),
    responses((status = 400, body = ErrorBody), (status = 204), (status = 200, body = Object, description = "dry_run=true: {plan, warnings, what_if, allowed, refused, errors}; nothing changed"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn remove(
    State(s): State<ControlState>,
    actor: Actor,
    super::ApiPath(id): super::ApiPath<String>,
    super::ApiQuery(dry): super::ApiQuery<DryRun>,
) -> Result<Response, ApiError> {
    if !dry.on() {
        actor.owner()?;
    }
    let users: Vec<String> =
        s.current().models.iter().filter(|m| m.consent.contains_key(&id)).map(|m| m.id.clone()).collect();
    if !users.is_empty() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!(
                "consent category `{id}` is mapped by model(s) {}; remove those consent mappings first",
                users.join(", ")
            ),
            Some("id"),
        ));
    }
    let edit = move |ws: &mut sluice_core::WorkspaceFile| {
        let before = ws.consent_categories.len();
        ws.consent_categories.retain(|c| c.id != id);
        if ws.consent_categories.len() == before {
            return Err(not_found(&id));
        }
        Ok(())
    };
    if dry.on() {
        return Ok(s.preview(actor, true, edit).await?.into_response());
    }
    s.change(actor, edit).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
