//! The accounts HTTP API (docs/protocol.md section 2.2): `POST /api/v1/login`,
//! `POST /api/v1/token`, and for `admin` tokens `/api/v1/users` and `/api/v1/groups`.
//! Errors are `{"error": {"code", "message"}}` with stable codes. Request bodies are JSON
//! of at most 16 KiB, sent within `http.header_timeout` (a body that trickles in or never
//! comes is answered 408 and does not hold a connection slot).

use super::connected::Ended;
use super::{Accounts, LoginError};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::Json;
use roost_auth::{Identity, Role, Verifier};
use roost_history::{AccountError, Store};
use serde::Deserialize;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tower_http::timeout::RequestBodyTimeoutLayer;
use tracing::{info, warn};

const MAX_BODY_BYTES: usize = 16 * 1024;

#[derive(Clone)]
struct AccountsApi {
    verifier: Arc<Verifier>,
    accounts: Arc<Accounts>,
}

/// The routes, ready to merge into the node's HTTP router.
pub(crate) fn routes(
    verifier: Arc<Verifier>,
    accounts: Arc<Accounts>,
    body_timeout: Duration,
) -> axum::Router {
    axum::Router::new()
        .route("/api/v1/login", post(login))
        .route("/api/v1/token", post(refresh))
        .route("/api/v1/users", get(list_users).post(add_user))
        .route("/api/v1/users/{id}", delete(delete_user).patch(change_user))
        .route("/api/v1/groups", get(list_groups).post(add_group))
        .route("/api/v1/groups/{id}", delete(delete_group))
        .route(
            "/api/v1/groups/{id}/members/{user}",
            put(add_member).delete(remove_member),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(RequestBodyTimeoutLayer::new(body_timeout))
        .with_state(AccountsApi { verifier, accounts })
}

/// An error answer.
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<Duration>,
}

fn error(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError {
        status,
        code,
        message: message.into(),
        retry_after: None,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        let mut response = (self.status, Json(body)).into_response();
        if let Some(wait) = self.retry_after {
            let secs = wait.as_secs().max(1).to_string();
            if let Ok(v) = HeaderValue::from_str(&secs) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}

impl From<LoginError> for ApiError {
    fn from(e: LoginError) -> Self {
        let (status, code) = match &e {
            LoginError::BadCredentials => (StatusCode::UNAUTHORIZED, "bad_credentials"),
            LoginError::Disabled => (StatusCode::FORBIDDEN, "account_disabled"),
            LoginError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            LoginError::Busy => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            LoginError::Unavailable | LoginError::NoSecret => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
        };
        let retry_after = match &e {
            LoginError::RateLimited(wait) => Some(*wait),
            LoginError::Busy => Some(Duration::from_secs(1)),
            _ => None,
        };
        ApiError {
            status,
            code,
            message: e.to_string(),
            retry_after,
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        let status = match &e {
            AccountError::InvalidId(_) | AccountError::InvalidDisplayName => {
                StatusCode::BAD_REQUEST
            }
            AccountError::UserNotFound(_)
            | AccountError::GroupNotFound(_)
            | AccountError::NotMember { .. } => StatusCode::NOT_FOUND,
            AccountError::UserExists(_) | AccountError::GroupExists(_) => StatusCode::CONFLICT,
            AccountError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        let message = match &e {
            AccountError::Store(inner) => {
                warn!(error = %inner, "account store error");
                "the account store is unavailable right now".to_owned()
            }
            other => other.to_string(),
        };
        error(status, e.code(), message)
    }
}

/// A JSON body, or a `bad_request` answer saying what is wrong with it.
fn body<T: serde::de::DeserializeOwned>(
    parsed: Result<Json<T>, axum::extract::rejection::JsonRejection>,
) -> Result<T, ApiError> {
    match parsed {
        Ok(Json(v)) => Ok(v),
        Err(rejection) if timed_out(&rejection) => Err(error(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request body was not sent within http.header_timeout",
        )),
        Err(rejection) => Err(error(
            rejection.status(),
            "bad_request",
            rejection.body_text(),
        )),
    }
}

/// Whether reading the body failed because it did not arrive in time.
fn timed_out(rejection: &axum::extract::rejection::JsonRejection) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(rejection);
    while let Some(e) = cause {
        if e.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cause = e.source();
    }
    false
}

fn bearer(headers: &HeaderMap, verifier: &Verifier) -> Result<Identity, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "send Authorization: Bearer <token>",
            )
        })?;
    verifier
        .verify(token.trim())
        .map_err(|e| error(StatusCode::UNAUTHORIZED, "unauthorized", e.to_string()))
}

fn admin(headers: &HeaderMap, api: &AccountsApi) -> Result<Store, ApiError> {
    let who = bearer(headers, &api.verifier)?;
    if who.role != Role::Admin {
        return Err(error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this needs an admin token",
        ));
    }
    store(api)
}

fn store(api: &AccountsApi) -> Result<Store, ApiError> {
    api.accounts.history().get().cloned().ok_or_else(|| {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the account store is unavailable right now",
        )
    })
}

#[derive(Deserialize)]
struct LoginBody {
    user: String,
    password: String,
}

async fn login(
    State(api): State<AccountsApi>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    parsed: Result<Json<LoginBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let LoginBody { user, password } = body(parsed)?;
    let accounts = &api.accounts;
    accounts.count_attempt(&peer.ip().to_string(), &user)?;
    match accounts.check_password(&user, &password).await {
        Ok(identity) => {
            let (token, expires_at) = accounts.mint(&identity)?;
            info!(user = %identity.user, %peer, "login");
            Ok(Json(json!({"token": token, "expires_at": expires_at})).into_response())
        }
        Err(e) => {
            info!(%peer, reason = %e, "login refused");
            Err(e.into())
        }
    }
}

async fn refresh(State(api): State<AccountsApi>, headers: HeaderMap) -> Result<Response, ApiError> {
    let who = bearer(&headers, &api.verifier)?;
    let store = store(&api)?;
    let account = store
        .user(&who.user)
        .await?
        .ok_or_else(|| error(StatusCode::FORBIDDEN, "user_not_found", "no such account"))?;
    if account.disabled {
        return Err(LoginError::Disabled.into());
    }
    let identity = api.accounts.identity(&who.user, account.admin).await?;
    let (token, expires_at) = api.accounts.mint(&identity)?;
    Ok(Json(json!({"token": token, "expires_at": expires_at})).into_response())
}

async fn list_users(
    State(api): State<AccountsApi>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let store = admin(&headers, &api)?;
    Ok(Json(json!({"users": store.users().await?})).into_response())
}

#[derive(Deserialize)]
struct NewUser {
    id: String,
    password: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    admin: bool,
}

async fn add_user(
    State(api): State<AccountsApi>,
    headers: HeaderMap,
    parsed: Result<Json<NewUser>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let store = admin(&headers, &api)?;
    let new = body(parsed)?;
    let hash = hash(&api, new.password).await?;
    store
        .add_user(&new.id, &new.display_name, &hash, new.admin)
        .await?;
    info!(user = %new.id, "admin: user added");
    Ok((StatusCode::CREATED, Json(json!({"id": new.id}))).into_response())
}

#[derive(Deserialize)]
struct UserChange {
    password: Option<String>,
    disabled: Option<bool>,
}

async fn change_user(
    State(api): State<AccountsApi>,
    Path(id): Path<String>,
    headers: HeaderMap,
    parsed: Result<Json<UserChange>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let store = admin(&headers, &api)?;
    let change = body(parsed)?;
    if let Some(password) = change.password {
        let hash = hash(&api, password).await?;
        store.set_password(&id, &hash).await?;
    }
    if let Some(disabled) = change.disabled {
        store.set_disabled(&id, disabled).await?;
        if disabled {
            info!(user = %id, "admin: user disabled");
            api.accounts.end_user(&id, Ended::Disabled);
        } else {
            api.accounts.connected().enabled(&id);
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn delete_user(
    State(api): State<AccountsApi>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let store = admin(&headers, &api)?;
    store.delete_user(&id).await?;
    info!(user = %id, "admin: user deleted");
    api.accounts.end_user(&id, Ended::Deleted);
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_groups(
    State(api): State<AccountsApi>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let store = admin(&headers, &api)?;
    Ok(Json(json!({"groups": store.groups().await?})).into_response())
}

#[derive(Deserialize)]
struct NewGroup {
    id: String,
    #[serde(default)]
    display_name: String,
}

async fn add_group(
    State(api): State<AccountsApi>,
    headers: HeaderMap,
    parsed: Result<Json<NewGroup>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let store = admin(&headers, &api)?;
    let new = body(parsed)?;
    store.add_group(&new.id, &new.display_name).await?;
    Ok((StatusCode::CREATED, Json(json!({"id": new.id}))).into_response())
}

async fn delete_group(
    State(api): State<AccountsApi>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let store = admin(&headers, &api)?;
    store.delete_group(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn add_member(
    State(api): State<AccountsApi>,
    Path((group, user)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let store = admin(&headers, &api)?;
    store.add_member(&group, &user).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn remove_member(
    State(api): State<AccountsApi>,
    Path((group, user)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let store = admin(&headers, &api)?;
    store.remove_member(&group, &user).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Hashes a new password on the node's hashing pool.
async fn hash(api: &AccountsApi, password: String) -> Result<String, ApiError> {
    api.accounts
        .hash(password)
        .await
        .ok_or_else(|| LoginError::Busy.into())
        .and_then(|r| {
            r.map_err(|e| error(StatusCode::BAD_REQUEST, "invalid_password", e.to_string()))
        })
}
