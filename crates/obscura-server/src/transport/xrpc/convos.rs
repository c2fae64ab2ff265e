//! Conversations: `createConvo`, `addMembers`, `removeMember`, `leaveConvo`, `getConvos`,
//! `getEpoch`, `getCommits`, the Welcome pair `getWelcome` / `confirmWelcome`, and the rejoin
//! trio `getGroupInfo`, `updateGroupInfo`, `processExternalCommit`.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::bytes::{encode_base64, LexBytes};
use super::error::XrpcError;
use super::extract::{base64_field, did_field, Caller, XrpcJson, XrpcQuery};
use super::XrpcState;
use crate::domain::did::Did;
use crate::domain::mls::CipherSuite;
use crate::domain::time::UnixMillis;
use crate::ports::mls::{ConvoRecord, MessageRecord};
use crate::services::mls::convos::NewConversation;

/// How long a served GroupInfo is advertised as fresh (the lexicon's five minutes).
const GROUP_INFO_FRESH_MILLIS: i64 = 5 * 60 * 1000;

pub fn router() -> Router<XrpcState> {
    Router::new()
        .route("/blue.catbird.mls.createConvo", post(create))
        .route("/blue.catbird.mls.addMembers", post(add_members))
        .route("/blue.catbird.mls.removeMember", post(remove_member))
        .route("/blue.catbird.mls.leaveConvo", post(leave))
        .route("/blue.catbird.mls.getConvos", get(convos))
        .route("/blue.catbird.mls.getEpoch", get(epoch))
        .route("/blue.catbird.mls.getCommits", get(commits))
        .route("/blue.catbird.mls.getWelcome", get(welcomes))
        .route("/blue.catbird.mls.confirmWelcome", post(confirm_welcome))
        .route("/blue.catbird.mls.getGroupInfo", get(group_info))
        .route("/blue.catbird.mls.updateGroupInfo", post(update_group_info))
        .route("/blue.catbird.mls.processExternalCommit", post(external_commit))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MemberView {
    did: Did,
    user_did: Did,
    joined_at: String,
    is_admin: bool,
}

#[derive(Serialize)]
struct Metadata {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ConvoView {
    group_id: String,
    creator: Did,
    members: Vec<MemberView>,
    epoch: u64,
    cipher_suite: &'static str,
    created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_message_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Metadata>,
}

impl From<ConvoRecord> for ConvoView {
    fn from(convo: ConvoRecord) -> Self {
        let metadata = (convo.name.is_some() || convo.description.is_some())
            .then_some(Metadata { name: convo.name, description: convo.description });
        Self {
            group_id: convo.id,
            creator: convo.creator,
            members: convo
                .members
                .into_iter()
                .map(|m| MemberView {
                    user_did: m.did.clone(),
                    did: m.did,
                    joined_at: m.joined_at.to_rfc3339(),
                    is_admin: m.is_admin,
                })
                .collect(),
            epoch: convo.epoch,
            cipher_suite: CipherSuite::from_id(convo.suite).map_or("unknown", CipherSuite::name),
            created_at: convo.created_at.to_rfc3339(),
            last_message_at: convo.last_message_at.map(UnixMillis::to_rfc3339),
            metadata,
        }
    }
}

#[derive(Deserialize)]
struct MetadataInput {
    name: Option<String>,
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateInput {
    group_id: String,
    cipher_suite: String,
    idempotency_key: Option<String>,
    #[serde(default)]
    initial_members: Vec<String>,
    welcome_message: Option<String>,
    /// The server learns each Welcome's KeyPackages from the Welcome itself.
    #[serde(rename = "keyPackageHashes")]
    _key_package_hashes: Option<serde_json::Value>,
    metadata: Option<MetadataInput>,
    #[serde(default)]
    current_epoch: u64,
}

async fn create(
    State(state): State<XrpcState>,
    Caller(caller): Caller,
    XrpcJson(input): XrpcJson<CreateInput>,
) -> Result<Json<ConvoView>, XrpcError> {
    let members =
        input.initial_members.iter().map(|did| did_field("initialMembers", did)).collect::<Result<Vec<_>, _>>()?;
    let welcome = input.welcome_message.as_deref().map(|w| base64_field("welcomeMessage", w)).transpose()?;
    if input.idempotency_key.as_ref().is_some_and(|k| k.len() > 64) {
        return Err(XrpcError::invalid("idempotencyKey is longer than 64 characters"));
    }
    let (name, description) = input.metadata.map_or((None, None), |m| (m.name, m.description));
    let request = NewConversation {
        group_id: input.group_id,
        cipher_suite: input.cipher_suite,
        members,
        welcome,
        name,
        description,
        epoch: input.current_epoch,
        idempotency_key: input.idempotency_key,
    };
    let convo = state.mls.convos.create(&caller, request).await?;
    Ok(Json(convo.into()))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AddInput {
    convo_id: String,
    did_list: Vec<String>,
    commit: Option<String>,
    welcome_message: Option<String>,
    /// Our extension: the GroupInfo of the new epoch, stored with the commit.
    group_info: Option<String>,
    #[serde(rename = "idempotencyKey")]
    _idempotency_key: Option<String>,
    #[serde(rename = "keyPackageHashes")]
    _key_package_hashes: Option<serde_json::Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EpochOutput {
    success: bool,
    new_epoch: u64,
}

async fn add_members(
    State(state): State<XrpcState>,
    Caller(caller): Caller,
    XrpcJson(input): XrpcJson<AddInput>,
) -> Result<Json<EpochOutput>, XrpcError> {
    let dids = input.did_list.iter().map(|did| did_field("didList", did)).collect::<Result<Vec<_>, _>>()?;
    let commit =
        input.commit.ok_or_else(|| XrpcError::invalid("commit is required: the commit that adds the members"))?;
    let welcome = input
        .welcome_message
        .ok_or_else(|| XrpcError::invalid("welcomeMessage is required: the Welcome for the new members"))?;
    let commit = base64_field("commit", &commit)?;
    let welcome = base64_field("welcomeMessage", &welcome)?;
    let group_info = input.group_info.as_deref().map(|g| base64_field("groupInfo", g)).transpose()?;
    let new_epoch = state.mls.convos.add_members(&caller, &input.convo_id, dids, commit, welcome, group_info).await?;
    Ok(Json(EpochOutput { success: true, new_epoch }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RemoveInput {
    convo_id: String,
    target_did: String,
    #[serde(rename = "idempotencyKey")]
    _idempotency_key: Option<String>,
    reason: Option<String>,
    commit: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RemoveOutput {
    ok: bool,
    epoch_hint: u64,
}

async fn remove_member(
    State(state): State<XrpcState>,
    Caller(caller): Caller,
    XrpcJson(input): XrpcJson<RemoveInput>,
) -> Result<Json<RemoveOutput>, XrpcError> {
    let target = did_field("targetDid", &input.target_did)?;
    if input.reason.as_ref().is_some_and(|r| r.chars().count() > 500) {
        return Err(XrpcError::invalid("reason is longer than 500 characters"));
    }
    let commit = input.commit.as_deref().map(|c| base64_field("commit", c)).transpose()?;
    let epoch_hint = state.mls.convos.remove_member(&caller, &input.convo_id, target, commit).await?;
    Ok(Json(RemoveOutput { ok: true, epoch_hint }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LeaveInput {
    convo_id: String,
    target_did: Option<String>,
    commit: Option<String>,
}

async fn leave(
    State(state): State<XrpcState>,
    Caller(caller): Caller,
    XrpcJson(input): XrpcJson<LeaveInput>,
) -> Result<Json<EpochOutput>, XrpcError> {
    let target = input.target_did.as_deref().map(|did| did_field("targetDid", did)).transpose()?;
    let commit = input.commit.as_deref().map(|c| base64_field("commit", c)).transpose()?;
    let new_epoch = state.mls.convos.leave(&caller, &input.convo_id, target, commit).await?;
    Ok(Json(EpochOutput { success: true, new_epoch }))
}

#[derive(Deserialize)]
struct ConvosParams {
    limit: Option<u32>,
    cursor: Option<String>,
}

#[derive(Serialize)]
struct ConvosOutput {
    conversations: Vec<ConvoView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cursor: Option<String>,
}

async fn convos(
    State(state): State<XrpcState>,
    Caller(caller): Caller,
    XrpcQuery(params): XrpcQuery<ConvosParams>,
) -> Result<Json<ConvosOutput>, XrpcError> {
    let limit = params.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(XrpcError::invalid("limit must be between 1 and 100"));
    }
    let (convos, cursor) = state.mls.convos.convos(&caller, limit, params.cursor.as_deref()).await?;
    Ok(Json(ConvosOutput { conversations: convos.into_iter().map(ConvoView::from).collect(), cursor }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConvoParams {
    convo_id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EpochView {
    convo_id: String,
    current_epoch: u64,
}

async fn epoch(
    State(state): State<XrpcState>,
    Caller(caller): Caller,
    XrpcQuery(params): XrpcQuery<ConvoParams>,
) -> Result<Json<EpochView>, XrpcError> {
    let convo = state.mls.convos.convo(&caller, &params.convo_id).await?;
    Ok(Json(EpochView { convo_id: convo.id, current_epoch: convo.epoch }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CommitsParams {
    convo_id: String,
    from_epoch: u64,
    to_epoch: Option<u64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CommitView {
    epoch: u64,
    sender: Did,
    commit_data: LexBytes,
    created_at: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CommitsOutput {
    convo_id: String,
    commits: Vec<CommitView>,
    /// Our extension: the answer stopped at its byte budget (or 1,000 commits); ask again
    /// from this epoch for the rest.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_from_epoch: Option<u64>,
}

async fn commits(
    State(state): State<XrpcState>,
    Caller(caller): Caller,
    XrpcQuery(params): XrpcQuery<CommitsParams>,
) -> Result<Json<CommitsOutput>, XrpcError> {
    let (commits, next_from_epoch) =
        state.mls.convos.commits(&caller, &params.convo_id, params.from_epoch, params.to_epoch).await?;
    let commits = commits
        .into_iter()
        .map(|c: MessageRecord| CommitView {
            epoch: c.epoch,
            sender: c.sender,
            commit_data: LexBytes(c.body),
            created_at: c.created_at.to_rfc3339(),
        })
        .collect();
    Ok(Json(CommitsOutput { convo_id: params.convo_id.to_ascii_lowercase(), commits, next_from_epoch }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WelcomeParams {
    convo_id: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WelcomeView {
    id: String,
    convo_id: String,
    welcome: LexBytes,
    epoch: u64,
    created_at: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WelcomesOutput {
    welcomes: Vec<WelcomeView>,
    /// Our extension: more Welcomes wait than one answer carries; confirm these and ask again.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    has_more: bool,
}

async fn welcomes(
    State(state): State<XrpcState>,
    Caller(caller): Caller,
    XrpcQuery(params): XrpcQuery<WelcomeParams>,
) -> Result<Json<WelcomesOutput>, XrpcError> {
    let listed = state.mls.convos.welcomes(&caller, params.convo_id.as_deref()).await?;
    let welcomes = listed
        .items
        .into_iter()
        .map(|w| WelcomeView {
            id: w.id,
            convo_id: w.convo,
            welcome: LexBytes(w.body),
            epoch: w.epoch,
            created_at: w.created_at.to_rfc3339(),
        })
        .collect();
    Ok(Json(WelcomesOutput { welcomes, has_more: listed.more }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfirmInput {
    welcome_id: String,
    device_id: Option<String>,
}

#[derive(Serialize)]
struct ConfirmOutput {
    confirmed: bool,
}

async fn confirm_welcome(
    State(state): State<XrpcState>,
    Caller(caller): Caller,
    XrpcJson(input): XrpcJson<ConfirmInput>,
) -> Result<Json<ConfirmOutput>, XrpcError> {
    state.mls.convos.confirm_welcome(&caller, &input.welcome_id, input.device_id.as_deref()).await?;
    Ok(Json(ConfirmOutput { confirmed: true }))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GroupInfoOutput {
    group_info: String,
    epoch: u64,
    expires_at: String,
}

async fn group_info(
    State(state): State<XrpcState>,
    Caller(caller): Caller,
    XrpcQuery(params): XrpcQuery<ConvoParams>,
) -> Result<Json<GroupInfoOutput>, XrpcError> {
    let info = state.mls.convos.group_info(&caller, &params.convo_id).await?;
    Ok(Json(GroupInfoOutput {
        group_info: encode_base64(&info.body),
        epoch: info.epoch,
        expires_at: UnixMillis(info.updated_at.0.saturating_add(GROUP_INFO_FRESH_MILLIS)).to_rfc3339(),
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateGroupInfoInput {
    convo_id: String,
    group_info: String,
    epoch: u64,
}

#[derive(Serialize)]
struct UpdatedOutput {
    updated: bool,
}

async fn update_group_info(
    State(state): State<XrpcState>,
    Caller(caller): Caller,
    XrpcJson(input): XrpcJson<UpdateGroupInfoInput>,
) -> Result<Json<UpdatedOutput>, XrpcError> {
    let body = base64_field("groupInfo", &input.group_info)?;
    state.mls.convos.update_group_info(&caller, &input.convo_id, body, input.epoch).await?;
    Ok(Json(UpdatedOutput { updated: true }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExternalCommitInput {
    convo_id: String,
    external_commit: String,
    #[serde(rename = "idempotencyKey")]
    _idempotency_key: Option<String>,
    group_info: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RejoinOutput {
    epoch: u64,
    rejoined_at: String,
}

async fn external_commit(
    State(state): State<XrpcState>,
    Caller(caller): Caller,
    XrpcJson(input): XrpcJson<ExternalCommitInput>,
) -> Result<Json<RejoinOutput>, XrpcError> {
    let commit = base64_field("externalCommit", &input.external_commit)?;
    let group_info = input.group_info.as_deref().map(|g| base64_field("groupInfo", g)).transpose()?;
    let (epoch, at) = state.mls.convos.rejoin(&caller, &input.convo_id, commit, group_info).await?;
    Ok(Json(RejoinOutput { epoch, rejoined_at: at.to_rfc3339() }))
}
