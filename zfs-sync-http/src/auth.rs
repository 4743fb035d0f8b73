//! The `X-API-Key` security scheme. Taking [`ApiKeyAuth`] as a parameter protects an
//! operation: the key is hashed and looked up, and the operation gets the key's [`Role`].

use chrono::Utc;
use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::ApiKey;
use uuid::Uuid;
use zfs_sync::model::Role;
use zfs_sync::service::auth;

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::wire::SystemPath;

/// An API key in the `X-API-Key` header: an admin key, or a system's own key.
#[derive(Debug, SecurityScheme)]
#[oai(
    ty = "api_key",
    key_name = "X-API-Key",
    key_in = "header",
    checker = "check_key"
)]
pub struct ApiKeyAuth(pub Role);

/// The role a request's key was found to have before its body was read (see
/// [`crate::middleware::KeyBeforeBody`]): the scheme's checker does not look it up again.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Authenticated(pub Role);

/// Authenticates `key` for the request's client address: a client throttled after failed
/// authentications gets 429, a key that is no key 401 (counted against the client when a
/// key was presented).
pub(crate) async fn authenticate_request(req: &Request, key: &str) -> Result<Role, ApiError> {
    let state = req
        .data::<AppState>()
        .ok_or_else(|| ApiError::new(500, "server state missing", None, None))?;
    let client = req
        .remote_addr()
        .as_socket_addr()
        .map_or_else(|| req.remote_addr().to_string(), |a| a.ip().to_string());
    let now = Utc::now();
    state
        .auth_throttle
        .check(&client, now)
        .map_err(ApiError::throttled)?;
    auth::authenticate(state.store.as_ref(), key)
        .await
        .inspect_err(|e| {
            if matches!(e, zfs_sync::Error::Unauthorized { .. }) && !key.trim().is_empty() {
                state.auth_throttle.failed(&client, now);
            }
        })
        .map_err(ApiError::from)
}

/// Authenticates the key; a system's own key also marks the system seen (at most once per
/// [`SeenMarks`](zfs_sync::service::health::SeenMarks) interval, never for admin keys).
async fn check_key(req: &Request, key: ApiKey) -> poem::Result<Role> {
    let role = match req.data::<Authenticated>() {
        Some(done) => done.0,
        None => authenticate_request(req, &key.key).await?,
    };
    let state = req
        .data::<AppState>()
        .ok_or_else(|| poem::Error::from(ApiError::new(500, "server state missing", None, None)))?;
    if let Err(e) = state
        .seen
        .mark(state.store.as_ref(), role, Utc::now())
        .await
    {
        // The request goes on: being marked seen is not what it asked for.
        tracing::warn!(error = %e, "could not mark the system seen");
    }
    Ok(role)
}

impl ApiKeyAuth {
    pub fn admin(&self) -> ApiResult<()> {
        Ok(auth::authorize_admin(self.0)?)
    }

    pub fn for_system(&self, system_id: Uuid) -> ApiResult<()> {
        Ok(auth::authorize_system(self.0, system_id)?)
    }

    /// The id of the system a `{system_id}` path parameter names (its id or hostname), when
    /// this key may act for it: see [`auth::authorize_system_ref`] (a system key naming
    /// another system, by id or hostname, is 403).
    pub async fn system_ref(&self, state: &AppState, path: &SystemPath) -> ApiResult<Uuid> {
        Ok(auth::authorize_system_ref(state.store.as_ref(), self.0, &path.0).await?)
    }

    pub fn any_of(&self, system_ids: &[Uuid], what: &str) -> ApiResult<()> {
        Ok(auth::authorize_any_of(self.0, system_ids, what)?)
    }

    /// The system a listing is limited to: a system key's own (asking for another one is
    /// 403), or for an admin key the one asked for (`None`: every system).
    pub fn listing_scope(&self, asked: Option<Uuid>) -> ApiResult<Option<Uuid>> {
        match (self.system(), asked) {
            (Some(own), Some(q)) if own != q => Err(self.for_system(q).unwrap_err()),
            (Some(own), _) => Ok(Some(own)),
            (None, q) => Ok(q),
        }
    }

    /// The system this key belongs to (`None` for admin keys).
    pub fn system(&self) -> Option<Uuid> {
        match self.0 {
            Role::Admin => None,
            Role::System(id) => Some(id),
        }
    }
}
