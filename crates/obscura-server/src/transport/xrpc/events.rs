//! Real-time events: `getSubscriptionTicket`, the `subscribeConvoEvents` WebSocket it opens,
//! and `groupInfoRefresh`, which asks the members for a fresh GroupInfo through the stream.

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::http::header::HOST;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::error::XrpcError;
use super::event_stream::{self, Admitted};
use super::extract::{Caller, XrpcBytes, XrpcJson, XrpcQuery};
use super::XrpcState;
use crate::services::mls::events::StreamError;

const SUBSCRIBE_PATH: &str = "/xrpc/blue.catbird.mls.subscribeConvoEvents";

/// Largest frame a subscriber may send (it has nothing to say; pongs and close frames fit).
const MAX_CLIENT_FRAME: usize = 4096;

pub fn router() -> Router<XrpcState> {
    Router::new()
        .route("/blue.catbird.mls.getSubscriptionTicket", post(ticket))
        .route("/blue.catbird.mls.subscribeConvoEvents", get(subscribe))
        .route("/blue.catbird.mls.groupInfoRefresh", post(group_info_refresh))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct TicketInput {
    convo_id: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TicketOutput {
    ticket: String,
    endpoint: String,
    expires_at: String,
}

/// The WebSocket URL of the stream: from our public URL when configured, else from the Host
/// the client reached us by.
fn endpoint(state: &XrpcState, headers: &HeaderMap) -> Result<String, XrpcError> {
    if let Some(base) = &state.endpoint {
        let mut url = base.clone();
        let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
        if url.set_scheme(scheme).is_ok() {
            url.set_path(SUBSCRIBE_PATH);
            url.set_query(None);
            return Ok(url.to_string());
        }
    }
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| XrpcError::invalid("a Host header is needed to name the subscription endpoint"))?;
    let scheme = if state.tls { "wss" } else { "ws" };
    Ok(format!("{scheme}://{host}{SUBSCRIBE_PATH}"))
}

async fn ticket(
    State(state): State<XrpcState>,
    headers: HeaderMap,
    Caller(caller): Caller,
    XrpcBytes(body): XrpcBytes,
) -> Result<Json<TicketOutput>, XrpcError> {
    // The input is optional: an empty body asks for a ticket to every conversation.
    let input: TicketInput = if body.iter().all(u8::is_ascii_whitespace) {
        TicketInput::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| XrpcError::invalid(format!("input: {e}")))?
    };
    let endpoint = endpoint(&state, &headers)?;
    let ticket = state.mls.events.issue_ticket(&caller, input.convo_id).await?;
    Ok(Json(TicketOutput { ticket: ticket.token, endpoint, expires_at: ticket.expires_at.to_rfc3339() }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubscribeParams {
    ticket: Option<String>,
    cursor: Option<String>,
    convo_id: Option<String>,
}

/// Checks the ticket, the place and the cursor, and only then spends the ticket (a refused
/// subscription can be retried with it); a refusal is told in an error frame.
async fn admit(state: &XrpcState, params: &SubscribeParams) -> Result<Admitted, StreamError> {
    let events = &state.mls.events;
    let ticket = params.ticket.as_deref().ok_or(StreamError::InvalidTicket)?;
    let ticket = events.check_ticket(ticket, params.convo_id.as_deref())?;
    let slot = events.occupy(&ticket.subscriber.did)?;
    let position = events.start(params.cursor.as_deref()).await?;
    let subscriber = events.spend_ticket(ticket).await?;
    Ok(Admitted { subscriber, position, _slot: slot })
}

async fn subscribe(
    State(state): State<XrpcState>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    XrpcQuery(params): XrpcQuery<SubscribeParams>,
) -> Response {
    let Ok(upgrade) = upgrade else {
        return XrpcError::invalid("subscribeConvoEvents is a WebSocket subscription: connect with a WebSocket client")
            .into_response();
    };
    let admitted = admit(&state, &params).await;
    let (events, settings, shutdown) = (state.mls.events.clone(), state.stream, state.shutdown.clone());
    let tracker = state.sessions.clone();
    upgrade
        .max_message_size(MAX_CLIENT_FRAME)
        .max_frame_size(MAX_CLIENT_FRAME)
        .on_upgrade(move |socket| tracker.track_future(event_stream::run(socket, admitted, events, settings, shutdown)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RefreshInput {
    convo_id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RefreshOutput {
    requested: bool,
    active_members: u64,
}

async fn group_info_refresh(
    State(state): State<XrpcState>,
    Caller(caller): Caller,
    XrpcJson(input): XrpcJson<RefreshInput>,
) -> Result<Json<RefreshOutput>, XrpcError> {
    let members = state.mls.events.request_group_info_refresh(&caller, &input.convo_id).await?;
    Ok(Json(RefreshOutput { requested: true, active_members: members }))
}
