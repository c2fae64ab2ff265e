//! Our extractors. Every rejection becomes an `ApiError`, so every error body is JSON: handlers
//! never use axum's extractors directly.

use std::sync::Arc;

use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::domain::ids::UserId;
use crate::services::tokens::Tokens;
use crate::services::ServiceError;

fn rejected(status: axum::http::StatusCode, text: String) -> ApiError {
    ApiError::Rejected { status, text }
}

/// A JSON body (415 without a JSON content type, 400 for bad syntax, 422 for a wrong shape,
/// 413 past the body limit).
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        axum::Json::<T>::from_request(req, state)
            .await
            .map(|axum::Json(value)| Self(value))
            .map_err(|e: JsonRejection| rejected(e.status(), e.body_text()))
    }
}

/// Path parameters (400 when they do not parse).
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Self(value))
            .map_err(|e: PathRejection| rejected(axum::http::StatusCode::BAD_REQUEST, e.body_text()))
    }
}

/// Query parameters (400 when missing or malformed).
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Self(value))
            .map_err(|e: QueryRejection| rejected(e.status(), e.body_text()))
    }
}

/// A whole body as bytes, within the body limit (413 past it).
pub struct ApiBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for ApiBytes {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(req, state).await.map(Self).map_err(|e: BytesRejection| rejected(e.status(), e.body_text()))
    }
}

/// The user of a valid `Authorization: Bearer <jwt>` header whose account exists (401
/// otherwise).
#[derive(Debug, Clone, Copy)]
pub struct BearerUser(pub UserId);

impl<S> FromRequestParts<S> for BearerUser
where
    S: Send + Sync,
    Arc<Tokens>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let tokens = Arc::<Tokens>::from_ref(state);
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(ServiceError::Unauthorized)?;
        let user = tokens.authenticate(token).await?;
        tracing::Span::current().record("user", tracing::field::display(user));
        Ok(Self(user))
    }
}

/// A streamed upload: its declared `Content-Length` (`Err` when the header is not a number)
/// and its body as the blob store takes it. Shared by v1 attachments and MLS blobs.
pub fn upload_stream(request: Request) -> (Result<Option<u64>, InvalidLength>, crate::ports::blobs::ByteStream) {
    use futures_util::{StreamExt as _, TryStreamExt as _};
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .map(|value| value.to_str().ok().and_then(|text| text.parse::<u64>().ok()).ok_or(InvalidLength))
        .transpose();
    (declared, request.into_body().into_data_stream().map_err(std::io::Error::other).boxed())
}

/// A `Content-Length` header that is not a number.
#[derive(Debug, Clone, Copy)]
pub struct InvalidLength;
