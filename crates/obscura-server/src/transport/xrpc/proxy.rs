//! The development proxy (seed: `ENABLE_DIRECT_XRPC_PROXY`): XRPC methods this server does
//! not implement are forwarded to `UPSTREAM_XRPC_BASE` with only their Authorization and
//! Content-Type headers, so a client can point at one base URL while developing. Production
//! deployments leave it off: there the user's PDS proxies to us (`atproto-proxy`), and the
//! settings refuse the proxy unless the development mode is on.

use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::extract::Request;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::error::XrpcError;

/// Largest upstream answer relayed.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// Forwards unknown XRPC calls to an upstream base URL.
pub struct DevProxy {
    client: reqwest::Client,
    base: url::Url,
    body_limit: usize,
}

impl DevProxy {
    /// A proxy to `base` (scheme, host and optional path prefix).
    pub fn new(base: url::Url, body_limit: usize) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self { client, base, body_limit })
    }

    /// Relays `request` and the upstream's answer (status, Content-Type, body).
    pub async fn forward(&self, request: Request) -> Response {
        match self.relay(request).await {
            Ok(response) => response,
            Err(err) => err.into_response(),
        }
    }

    async fn relay(&self, request: Request) -> Result<Response, XrpcError> {
        let (parts, body) = request.into_parts();
        // Inside the `/xrpc` nest the URI has lost its prefix; the original one has it.
        let uri = parts.extensions.get::<axum::extract::OriginalUri>().map_or(&parts.uri, |original| &original.0);
        let path_and_query = uri.path_and_query().map_or("/", |pq| pq.as_str());
        let url = format!("{}{path_and_query}", self.base.as_str().trim_end_matches('/'));
        let body = to_bytes(body, self.body_limit).await.map_err(|_| {
            XrpcError::named(StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge", "Request body too large")
        })?;
        let method = reqwest::Method::from_bytes(parts.method.as_str().as_bytes())
            .map_err(|_| XrpcError::invalid("unsupported HTTP method"))?;
        let mut upstream = self.client.request(method, url);
        for name in [AUTHORIZATION, CONTENT_TYPE] {
            if let Some(value) = parts.headers.get(&name) {
                upstream = upstream.header(name.as_str(), value.as_bytes());
            }
        }
        if !body.is_empty() {
            upstream = upstream.body(body);
        }
        let failed = |detail: String| {
            tracing::warn!(detail, "development proxy: upstream failed");
            XrpcError::named(StatusCode::BAD_GATEWAY, "UpstreamFailure", "The upstream XRPC server did not answer")
        };
        let answer = upstream.send().await.map_err(|e| failed(e.without_url().to_string()))?;
        let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        let content_type = answer.headers().get(reqwest::header::CONTENT_TYPE).cloned();
        if answer.content_length().is_some_and(|len| len > MAX_RESPONSE_BYTES as u64) {
            return Err(failed("answer too large".into()));
        }
        let bytes = answer.bytes().await.map_err(|e| failed(e.without_url().to_string()))?;
        if bytes.len() > MAX_RESPONSE_BYTES {
            return Err(failed("answer too large".into()));
        }
        let mut response = (status, Body::from(bytes)).into_response();
        if let Some(value) = content_type.and_then(|v| axum::http::HeaderValue::from_bytes(v.as_bytes()).ok()) {
            response.headers_mut().insert(CONTENT_TYPE, value);
        }
        Ok(response)
    }
}
