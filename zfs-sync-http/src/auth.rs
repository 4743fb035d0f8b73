//! The `X-API-Key` security scheme. Taking [`ApiKeyAuth`] as a parameter protects an
//! operation: the key is hashed and looked up, and the operation gets the key's [`Role`].

use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::ApiKey;
use uuid::Uuid;
use zfs_sync::model::Role;
use zfs_sync::service::auth;

use crate::AppState;
use crate::error::{ApiError, ApiResult};

/// An API key in the `X-API-Key` header: an admin key, or a system's own key.
#[derive(Debug, SecurityScheme)]
#[oai(
    ty = "api_key",
    key_name = "X-API-Key",
    key_in = "header",
    checker = "check_key"
)]
pub struct ApiKeyAuth(pub Role);

async fn check_key(req: &Request, key: ApiKey) -> poem::Result<Role> {
    let state = req
        .data::<AppState>()
        .ok_or_else(|| poem::Error::from(ApiError::new(500, "server state missing", None, None)))?;
    auth::authenticate(state.store.as_ref(), &key.key)
        .await
        .map_err(|e| ApiError::from(e).into())
}

impl ApiKeyAuth {
    pub fn admin(&self) -> ApiResult<()> {
        Ok(auth::authorize_admin(self.0)?)
    }

    pub fn for_system(&self, system_id: Uuid) -> ApiResult<()> {
        Ok(auth::authorize_system(self.0, system_id)?)
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
