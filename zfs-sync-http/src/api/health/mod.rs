//! `/health*`: public probes.

pub mod dto;

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};

use self::dto::{Probe, ServiceHealth};
use super::ApiTags;
use crate::AppState;

/// Health probes.
#[derive(Debug)]
pub struct HealthApi;

/// Readiness.
#[derive(Debug, ApiResponse)]
pub enum ReadyResponse {
    /// The database answers.
    #[oai(status = 200)]
    Ready(Json<Probe>),
    /// The database does not answer.
    #[oai(status = 503)]
    Unavailable(Json<crate::error::ErrorBody>),
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Health")]
impl HealthApi {
    /// ★ Service health (legacy shape).
    #[oai(path = "/health", method = "get", operation_id = "health")]
    async fn health(&self) -> Json<ServiceHealth> {
        Json(ServiceHealth {
            status: "healthy".into(),
            service: "zfs-sync".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        })
    }

    /// Ready when the database answers.
    #[oai(path = "/health/ready", method = "get", operation_id = "health_ready")]
    async fn ready(&self, state: Data<&AppState>) -> ReadyResponse {
        match state.store.ping().await {
            Ok(()) => ReadyResponse::Ready(Json(Probe {
                status: "ready".into(),
                detail: None,
            })),
            Err(e) => {
                tracing::warn!(error = %e, "readiness check failed");
                ReadyResponse::Unavailable(Json(crate::error::ErrorBody {
                    detail: format!("database unavailable: {e}"),
                    status_code: 503,
                    field: None,
                    code: Some("unavailable".into()),
                }))
            }
        }
    }

    /// Alive while the process serves requests.
    #[oai(path = "/health/live", method = "get", operation_id = "health_live")]
    async fn live(&self) -> Json<Probe> {
        Json(Probe {
            status: "alive".into(),
            detail: None,
        })
    }
}
