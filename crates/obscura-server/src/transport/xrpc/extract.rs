//! Extractors of the XRPC surface: the authenticated caller (service JWT, its issuer resolved
//! on the client IP's allowance, then the per-DID per-method rate limit), JSON and raw bodies,
//! and query parameters (repeated keys become arrays, as XRPC clients send them). Every
//! rejection is an XRPC error body that names the problem.

use std::fmt;
use std::net::IpAddr;

use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::error::XrpcError;
use super::XrpcState;
use crate::domain::did::Did;
use crate::domain::nsid::Nsid;
use crate::services::service_auth::AuthError;
use crate::transport::rate_limit::{retry_after_secs, ClientIp};

/// A DID calling a method: the key of the per-method rate limit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MethodCall {
    pub did: Did,
    pub nsid: Nsid,
}

impl fmt::Display for MethodCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}>{}", self.did, self.nsid)
    }
}

/// The called method, from the path.
pub fn called_nsid(parts: &Parts) -> Result<Nsid, XrpcError> {
    let name = parts.uri.path().rsplit('/').next().unwrap_or_default();
    Nsid::parse(name).map_err(|e| XrpcError::invalid(e.to_string()))
}

/// The authenticated caller of an XRPC method.
#[derive(Debug, Clone)]
pub struct Caller(pub Did);

impl FromRequestParts<XrpcState> for Caller {
    type Rejection = XrpcError;

    async fn from_request_parts(parts: &mut Parts, state: &XrpcState) -> Result<Self, Self::Rejection> {
        let nsid = called_nsid(parts)?;
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Missing)?;
        // Set by the per-IP tier in front of every XRPC route.
        let client = parts.extensions.get::<ClientIp>().map_or(IpAddr::from([0, 0, 0, 0]), |ClientIp(ip)| *ip);
        let did = state.auth.verify(token, &nsid, client).await?;
        tracing::Span::current().record("user", tracing::field::display(&did));
        state
            .limiter
            .check(MethodCall { did: did.clone(), nsid })
            .await
            .map_err(|wait| XrpcError::RateLimited { retry_after_secs: retry_after_secs(wait) })?;
        Ok(Self(did))
    }
}

/// A JSON input body.
pub struct XrpcJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for XrpcJson<T> {
    type Rejection = XrpcError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        axum::Json::<T>::from_request(req, state).await.map(|axum::Json(value)| Self(value)).map_err(
            |e: JsonRejection| match e.status() {
                StatusCode::PAYLOAD_TOO_LARGE => {
                    XrpcError::named(StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge", "Request body too large")
                }
                StatusCode::UNSUPPORTED_MEDIA_TYPE => XrpcError::invalid("Content-Type must be application/json"),
                _ => XrpcError::invalid(e.body_text()),
            },
        )
    }
}

/// A whole body as bytes (for inputs that may be empty), with the same rejections as
/// `XrpcJson`: 413 past the body limit, 400 for a body that cannot be read.
pub struct XrpcBytes(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for XrpcBytes {
    type Rejection = XrpcError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        axum::body::Bytes::from_request(req, state).await.map(Self).map_err(|e: BytesRejection| match e.status() {
            StatusCode::PAYLOAD_TOO_LARGE => {
                XrpcError::named(StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge", "Request body too large")
            }
            _ => XrpcError::invalid("the request body could not be read"),
        })
    }
}

/// Query parameters.
pub struct XrpcQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for XrpcQuery<T> {
    type Rejection = XrpcError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        serde_html_form::from_str(query).map(Self).map_err(|e| XrpcError::invalid(format!("query parameters: {e}")))
    }
}

/// Decodes a base64 field (standard or URL-safe, padded or not), naming it when it is not.
pub fn base64_field(name: &str, text: &str) -> Result<Vec<u8>, XrpcError> {
    super::bytes::decode_base64(text).ok_or_else(|| XrpcError::invalid(format!("{name} is not base64")))
}

/// Parses a DID field: `InvalidDid` naming the field when it is not one.
pub fn did_field(name: &str, text: &str) -> Result<Did, XrpcError> {
    Did::parse(text).map_err(|e| XrpcError::named(StatusCode::BAD_REQUEST, "InvalidDid", format!("{name}: {e}")))
}
