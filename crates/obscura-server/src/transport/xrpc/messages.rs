//! `sendMessage` and `getMessages`: the conversation's log, written at the current epoch and
//! read by seq.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::bytes::LexBytes;
use super::error::XrpcError;
use super::extract::{Caller, XrpcJson, XrpcQuery};
use super::XrpcState;
use crate::services::mls::convos::Outgoing;

pub fn router() -> Router<XrpcState> {
    Router::new()
        .route("/blue.catbird.mls.sendMessage", post(send))
        .route("/blue.catbird.mls.getMessages", get(messages))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SendInput {
    convo_id: String,
    msg_id: Option<String>,
    idempotency_key: Option<String>,
    ciphertext: LexBytes,
    epoch: u64,
    padded_size: u64,
    delivery: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SendOutput {
    message_id: String,
    received_at: String,
    seq: u64,
    epoch: u64,
}

async fn send(
    State(state): State<XrpcState>,
    Caller(caller): Caller,
    XrpcJson(input): XrpcJson<SendInput>,
) -> Result<Json<SendOutput>, XrpcError> {
    match input.delivery.as_deref() {
        None | Some("persistent") => {}
        Some("ephemeral") => {
            return Err(XrpcError::invalid("ephemeral delivery needs a live subscription, which this server lacks"))
        }
        Some(_) => return Err(XrpcError::invalid("delivery must be persistent or ephemeral")),
    }
    // `idempotencyKey` is the deprecated name of `msgId`.
    let msg_id = input.msg_id.or(input.idempotency_key).ok_or_else(|| XrpcError::invalid("msgId is required"))?;
    let outgoing =
        Outgoing { msg_id, ciphertext: input.ciphertext.0, epoch: input.epoch, padded_size: input.padded_size };
    let sent = state.mls.convos.send(&caller, &input.convo_id, outgoing).await?;
    Ok(Json(SendOutput {
        message_id: sent.msg_id,
        received_at: sent.at.to_rfc3339(),
        seq: sent.seq,
        epoch: sent.epoch,
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessagesParams {
    convo_id: String,
    limit: Option<u32>,
    since_seq: Option<u64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MessageView {
    id: String,
    convo_id: String,
    ciphertext: LexBytes,
    epoch: u64,
    seq: u64,
    created_at: String,
    message_type: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GapInfo {
    has_gaps: bool,
    missing_seqs: Vec<u64>,
    total_messages: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MessagesOutput {
    messages: Vec<MessageView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gap_info: Option<GapInfo>,
    /// Our extension: the page stopped at its count or byte budget; continue from `lastSeq`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    has_more: bool,
}

async fn messages(
    State(state): State<XrpcState>,
    Caller(caller): Caller,
    XrpcQuery(params): XrpcQuery<MessagesParams>,
) -> Result<Json<MessagesOutput>, XrpcError> {
    let limit = params.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(XrpcError::invalid("limit must be between 1 and 100"));
    }
    let since = params.since_seq.unwrap_or(0);
    let page = state.mls.convos.messages(&caller, &params.convo_id, since, limit).await?;
    let convo_id = params.convo_id.to_ascii_lowercase();
    let last_seq = page.messages.last().map(|m| m.seq);
    let messages = page
        .messages
        .into_iter()
        .map(|m| MessageView {
            id: m.msg_id,
            convo_id: convo_id.clone(),
            ciphertext: LexBytes(m.body),
            epoch: m.epoch,
            seq: m.seq,
            created_at: m.created_at.to_rfc3339(),
            message_type: m.kind.as_str(),
        })
        .collect();
    let gap_info =
        page.gaps.map(|gaps| GapInfo { has_gaps: true, missing_seqs: gaps.missing, total_messages: gaps.total });
    Ok(Json(MessagesOutput { messages, last_seq, gap_info, has_more: page.more }))
}
