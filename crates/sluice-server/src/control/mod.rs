//! The control API under `/api/v1`: authenticated by bearer tokens with roles (SPEC §5, §6).
//! The OpenAPI document at `/api/v1/openapi.json` is generated from these handlers, so it cannot
//! drift from them. Every change goes through the same path as `sluice apply`: validate, seal
//! credentials, store, append to the audit log; the running router sees it at once.

pub(crate) mod categories;
pub mod privacy;
pub(crate) mod resources;
mod tokens;
pub mod whatif;
mod writes;

pub use crate::error::{ApiError, ErrorBody, ErrorDetail};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use sluice_core::WorkspaceFile;
use sluice_engine::Workspace;
use sluice_state::{AuditEntry, Role, StateStore};
use std::path::PathBuf;
use std::sync::Arc;
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// What the control handlers share.
#[derive(Clone)]
pub struct ControlState {
    /// Where the state lives (its local folder holds `stream.db`).
    pub state: Arc<sluice_state::StateLocation>,
    /// Folder relative paths resolve from.
    pub base_dir: Arc<PathBuf>,
    /// The workspace the router uses; replaced on every change.
    pub live: crate::Live,
    /// Serializes changes.
    pub write: Arc<parking_lot::Mutex<()>>,
    /// Rows read so far by the syncs started through the API (or the web UI), per model; an
    /// entry lives as long as its run (the web UI shows it live).
    pub progress: Arc<parking_lot::Mutex<std::collections::BTreeMap<String, u64>>>,
    /// The suppressed identifiers the writer checks; a privacy request made through the API
    /// reloads it at once.
    pub suppressed: Arc<sluice_stream::privacy::Suppressed>,
    /// On a bus deployment: where privacy requests queue their streaming deletes.
    pub bus: Option<Arc<crate::deployment::BusReads>>,
}

/// A JSON body whose rejections use the API's error shape.
pub struct ApiJson<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Self(v)),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", "the body exceeds 1024 KB", None))
            }
            Err(e) => Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", e.body_text(), None)),
        }
    }
}

/// Query parameters whose rejections use the API's error shape.
pub struct ApiQuery<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Self(v)),
            Err(e) => Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", e.body_text(), None)),
        }
    }
}

/// Path parameters whose rejections use the API's error shape.
pub struct ApiPath<T>(pub T);

impl<T: serde::de::DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Self(v)),
            Err(e) => Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_path", e.body_text(), None)),
        }
    }
}

/// Who calls: from `Authorization: Bearer <token>`.
#[derive(Debug, Clone)]
pub struct Actor {
    /// The token's name.
    pub name: String,
    /// Its role.
    pub role: Role,
}

impl Actor {
    /// Refuses members: only owners change consent management.
    pub fn owner(&self) -> Result<(), ApiError> {
        match self.role {
            Role::Owner => Ok(()),
            Role::Member => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "only owners may create, edit or disable consent categories; members have read-only access",
                None,
            )),
        }
    }
}

impl FromRequestParts<ControlState> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ControlState) -> Result<Self, Self::Rejection> {
        // authenticated once per request, by [`require_token`] in front of every private route
        if let Some(actor) = parts.extensions.get::<Actor>() {
            return Ok(actor.clone());
        }
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthenticated",
                    "send `Authorization: Bearer <token>` (see `sluice token create`)",
                    None,
                )
            })?;
        Actor::from_token(state, token)
    }
}

impl Actor {
    /// The owner or member a token belongs to (the one check of the API and of the web UI's
    /// sessions, which keep the token server-side and check it again on every request).
    pub(crate) fn from_token(state: &ControlState, token: &str) -> Result<Self, ApiError> {
        let store = StateStore::open_at(&state.state).map_err(ApiError::internal)?;
        match store.authenticate(token.trim()).map_err(ApiError::internal)? {
            Some(t) => Ok(Actor { name: t.name, role: t.role }),
            None => Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", "unknown or disabled token", None)),
        }
    }
}

/// Lets a request through only with an owner or member token (the private side, SPEC §9).
pub async fn require_token(
    State(s): State<ControlState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let (mut parts, body) = req.into_parts();
    match Actor::from_request_parts(&mut parts, &s).await {
        Ok(actor) => {
            parts.extensions.insert(actor);
            next.run(axum::extract::Request::from_parts(parts, body)).await
        }
        Err(e) => e.into_response(),
    }
}

/// Pagination of lists.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// Items to skip.
    #[param(minimum = 0, maximum = 1000000)]
    pub offset: Option<usize>,
    /// Items to return (1–500, default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
}

impl Page {
    /// Refuses out-of-range values with the field named.
    pub(crate) fn check(&self) -> Result<(), ApiError> {
        if self.limit.is_some_and(|l| l == 0 || l > 500) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                "`limit` must be 1-500",
                Some("limit"),
            ));
        }
        if self.offset.is_some_and(|o| o > 1_000_000) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                "`offset` must be at most 1000000",
                Some("offset"),
            ));
        }
        Ok(())
    }

    pub(crate) fn window<T: Clone>(&self, all: &[T]) -> (Vec<T>, usize, usize) {
        let limit = self.limit.unwrap_or(100).clamp(1, 500);
        let offset = self.offset.unwrap_or(0).min(all.len());
        (all[offset..(offset + limit).min(all.len())].to_vec(), offset, limit)
    }
}

impl ControlState {
    /// Applies `change` to the stored workspace ([`ControlState::change_now`] off the async
    /// runtime).
    pub(crate) async fn change(
        &self,
        actor: Actor,
        change: impl Fn(&mut WorkspaceFile) -> Result<(), ApiError> + Send + 'static,
    ) -> Result<(), ApiError> {
        let s = self.clone();
        tokio::task::spawn_blocking(move || s.change_now(&actor, change)).await.map_err(ApiError::internal)?
    }

    /// The change path of the API: `change` edits a copy of the stored workspace, and
    /// [`sluice_engine::apply`] authorizes it for the actor's role, validates it, checks changed
    /// models against their warehouse, seals, stores and audits it; then it goes live.
    ///
    /// The warehouse checks (network I/O, as long as a model's query takes) run first, in a dry
    /// run, without the write lock: a slow warehouse or a member's slow SQL never holds up other
    /// changes. Under the lock the change is applied only if the stored workspace is still the
    /// one it was checked against; otherwise it is recomputed and checked again, and after three
    /// such rounds checked and stored under the lock (progress is guaranteed).
    pub(crate) fn change_now(
        &self,
        actor: &Actor,
        change: impl Fn(&mut WorkspaceFile) -> Result<(), ApiError>,
    ) -> Result<(), ApiError> {
        use sluice_engine::{ApplyOptions, ColumnCheck};
        let who = sluice_engine::Actor { name: format!("token:{}", actor.name), role: actor.role };
        let base = (*self.base_dir).clone();
        let mut store = StateStore::open_at(&self.state).map_err(ApiError::internal)?;
        for _ in 0..3 {
            let old = Workspace::load(&store).map_err(ApiError::internal)?.file;
            let mut file = old.clone();
            change(&mut file)?;
            let check = ApplyOptions { columns: ColumnCheck::Changed, dry_run: true };
            sluice_engine::apply(&mut store, file.clone(), base.clone(), &who, check).map_err(ApiError::from_change)?;
            let _one_at_a_time = self.write.lock();
            if Workspace::load(&store).map_err(ApiError::internal)?.file != old {
                continue; // changed meanwhile: recompute against what is stored now
            }
            let options = ApplyOptions { columns: ColumnCheck::Checked, dry_run: false };
            return self.store_applied(&mut store, file, &who, options);
        }
        // still changing under us (others keep writing): check and store under the lock, so a
        // stream of other writes can delay this change but never refuse it
        let _one_at_a_time = self.write.lock();
        let mut file = Workspace::load(&store).map_err(ApiError::internal)?.file;
        change(&mut file)?;
        let options = ApplyOptions { columns: ColumnCheck::Changed, dry_run: false };
        self.store_applied(&mut store, file, &who, options)
    }

    /// [`sluice_engine::apply`] for real, then live; call with the write lock held.
    fn store_applied(
        &self,
        store: &mut StateStore,
        file: WorkspaceFile,
        who: &sluice_engine::Actor,
        options: sluice_engine::ApplyOptions,
    ) -> Result<(), ApiError> {
        let applied =
            sluice_engine::apply(store, file, (*self.base_dir).clone(), who, options).map_err(ApiError::from_change)?;
        self.live.store(Arc::new(applied.workspace.file));
        Ok(())
    }

    pub(crate) fn current(&self) -> Arc<WorkspaceFile> {
        self.live.load_full()
    }

    pub(crate) fn engine_workspace(&self) -> Workspace {
        Workspace { file: (*self.current()).clone(), base_dir: (*self.base_dir).clone(), warnings: vec![] }
    }
}

/// A page of the audit log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// Entries, newest first.
    pub items: Vec<AuditEntry>,
}

/// The audit log of configuration changes (owners and members).
#[utoipa::path(get, path = "/api/v1/audit-log", params(Page),
    responses((status = 400, body = ErrorBody), (status = 200, body = AuditPage), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
async fn audit_log(
    State(s): State<ControlState>,
    _actor: Actor,
    ApiQuery(p): ApiQuery<Page>,
) -> Result<Json<AuditPage>, ApiError> {
    p.check()?;
    let store = StateStore::open_at(&s.state).map_err(ApiError::internal)?;
    let limit = p.limit.unwrap_or(100).clamp(1, 500);
    let all = store.audit_log(limit + p.offset.unwrap_or(0)).map_err(ApiError::internal)?;
    // redacted again on reading: entries written before a credential kind was known stay hidden
    let items = all
        .into_iter()
        .skip(p.offset.unwrap_or(0))
        .map(|mut e| {
            e.before = e.before.map(|v| sluice_engine::plan::redact(&e.kind, v));
            e.after = e.after.map(|v| sluice_engine::plan::redact(&e.kind, v));
            e
        })
        .collect();
    Ok(Json(AuditPage { items }))
}

/// Alerts (SPEC §12): the subjects firing now, the firing/resolved history (newest first,
/// `limit` entries), notifications not sent yet and the configured alerts (webhooks never
/// shown). Owners and members.
#[utoipa::path(get, path = "/api/v1/alerts", params(Page),
    responses((status = 400, body = ErrorBody), (status = 200, body = crate::alerts::AlertsView), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
async fn alerts(
    State(s): State<ControlState>,
    _actor: Actor,
    ApiQuery(p): ApiQuery<Page>,
) -> Result<Json<crate::alerts::AlertsView>, ApiError> {
    p.check()?;
    let store = StateStore::open_at(&s.state).map_err(ApiError::internal)?;
    let file = s.current();
    let v = crate::alerts::view(&store, &file, p.limit.unwrap_or(100)).map_err(ApiError::internal)?;
    Ok(Json(v))
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Sluice control API", description = "Consent categories, audit log; bearer tokens with roles."),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The control routes and their OpenAPI document (served at `/api/v1/openapi.json`).
pub fn router(state: ControlState) -> axum::Router {
    let (router, api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(categories::list, categories::create))
        .routes(routes!(categories::get, categories::update, categories::remove))
        .routes(routes!(audit_log))
        .routes(routes!(alerts))
        .routes(routes!(resources::sources))
        .routes(routes!(resources::destinations))
        .routes(routes!(resources::models))
        .routes(routes!(resources::model, writes::put_model, writes::delete_model))
        .routes(routes!(writes::put_source, writes::delete_source))
        .routes(routes!(writes::put_destination, writes::delete_destination))
        .routes(routes!(resources::preview))
        .routes(routes!(resources::set_consent))
        .routes(routes!(resources::start_sync, resources::syncs))
        .routes(routes!(resources::sync_run))
        .routes(routes!(resources::usage))
        .routes(routes!(resources::profile))
        .routes(routes!(tokens::list, tokens::create))
        .routes(routes!(tokens::disable))
        .routes(routes!(privacy::list, privacy::create))
        .routes(routes!(privacy::get))
        .with_state(state)
        .split_for_parts();
    let doc = Arc::new(api);
    router.route("/api/v1/openapi.json", axum::routing::get(move || async move { Json((*doc).clone()) }))
}
