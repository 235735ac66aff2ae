//! The HTTP API's errors: every refusal is JSON `{"error": {"code", "message"}}` with the
//! same codes as the MQTT notices and request results (docs/protocol.md section 5), and a
//! status derived from the code. Extractor rejections (a bad query string, path or body)
//! become `invalid_request` here instead of axum's plain-text answers.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use roost_proto::notice::code;
use roost_proto::request::RequestError;

/// An API error: a code of the wire contract and a message for people.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) code: String,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn new(code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            code: code.to_owned(),
            message: message.into(),
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(code::INVALID_REQUEST, message)
    }

    pub(crate) fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(UNAUTHORIZED, message)
    }

    pub(crate) fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(code::UNAVAILABLE, message)
    }

    /// The HTTP status for the code.
    pub(crate) fn status(&self) -> StatusCode {
        match self.code.as_str() {
            UNAUTHORIZED => StatusCode::UNAUTHORIZED,
            code::FORBIDDEN => StatusCode::FORBIDDEN,
            NOT_FOUND | code::UNKNOWN_METHOD => StatusCode::NOT_FOUND,
            METHOD_NOT_ALLOWED => StatusCode::METHOD_NOT_ALLOWED,
            code::TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
            code::RATE_LIMITED | QUOTA_EXCEEDED => StatusCode::TOO_MANY_REQUESTS,
            code::UNAVAILABLE => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// One more retained topic than a user may hold (`crate::retained`).
const QUOTA_EXCEEDED: &str = "quota_exceeded";
/// No valid `Authorization: Bearer` token (HTTP only: MQTT refuses it at CONNECT).
pub(crate) const UNAUTHORIZED: &str = "unauthorized";
/// No such endpoint (HTTP only).
pub(crate) const NOT_FOUND: &str = "not_found";
/// The endpoint exists, not with this method (HTTP only).
pub(crate) const METHOD_NOT_ALLOWED: &str = "method_not_allowed";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        (self.status(), Json(body)).into_response()
    }
}

impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> ApiError {
        ApiError::new(e.code, e.message)
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> ApiError {
        ApiError::invalid(e.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(e: PathRejection) -> ApiError {
        ApiError::invalid(e.body_text())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> ApiError {
        let too_large = e.status() == StatusCode::PAYLOAD_TOO_LARGE;
        ApiError::new(
            if too_large {
                code::TOO_LARGE
            } else {
                code::INVALID_REQUEST
            },
            e.body_text(),
        )
    }
}

/// The answer to a path no endpoint has.
pub(crate) async fn not_found() -> ApiError {
    ApiError::new(NOT_FOUND, "no such endpoint")
}

/// The answer to a method an endpoint does not take.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        METHOD_NOT_ALLOWED,
        "this endpoint does not take that method",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_statuses() {
        for (code, status) in [
            ("unauthorized", 401),
            ("forbidden", 403),
            ("not_found", 404),
            ("method_not_allowed", 405),
            ("too_large", 413),
            ("rate_limited", 429),
            ("unavailable", 503),
            ("invalid_request", 400),
            ("invalid_payload", 400),
        ] {
            assert_eq!(ApiError::new(code, "").status().as_u16(), status, "{code}");
        }
    }
}
