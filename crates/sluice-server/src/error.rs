//! The one HTTP error type of both sides (the Tracking API and the private API):
//! `{"success": false, "error": {"code", "message", "field"}}`, with its status. Internals never
//! leak: an internal error is logged and answered as `internal error`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

/// The error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Always `false` (the same shape as the Tracking API's errors).
    pub success: bool,
    /// The error.
    pub error: ErrorDetail,
}

/// An error's parts.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable code, e.g. `forbidden`, `not_found`, `invalid`.
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
    /// The field at fault, when there is one.
    pub field: Option<String>,
}

/// An API error with its status.
#[derive(Debug)]
pub struct ApiError(StatusCode, ErrorBody);

impl ApiError {
    /// A new error.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>, field: Option<&str>) -> Self {
        Self(
            status,
            ErrorBody {
                success: false,
                error: ErrorDetail { code: code.into(), message: message.into(), field: field.map(String::from) },
            },
        )
    }

    /// A refused change: 422 naming the first field at fault, 403 naming what only owners may
    /// change; anything else is internal.
    pub fn from_change(e: sluice_engine::ChangeError) -> Self {
        use sluice_engine::ChangeError;
        match &e {
            ChangeError::Invalid(errs) => {
                let first = errs.0.first().map(|c| c.at.as_str());
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", errs.to_string(), first)
            }
            ChangeError::Forbidden(refused) => {
                let field = refused.first().map(|c| c.field.as_str());
                Self::new(StatusCode::FORBIDDEN, "forbidden", e.to_string(), field)
            }
            ChangeError::Workspace(w) => Self::internal(w),
        }
    }

    /// The status it answers with.
    pub fn status(&self) -> StatusCode {
        self.0
    }

    /// Its message, for people.
    pub fn message(&self) -> &str {
        &self.1.error.message
    }

    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "control API internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error", None)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}
