//! An XRPC client acting as a user's PDS would: every call carries a fresh service token for
//! the called method, signed with the user's key.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::Value;

use crate::atproto::AtprotoIdentity;

/// Calls XRPC methods of one server as one identity.
#[derive(Clone)]
pub struct XrpcClient {
    http: reqwest::Client,
    base: String,
    /// The audience tokens name (the server's `--service-did`).
    pub aud: String,
    pub identity: Arc<AtprotoIdentity>,
}

/// A response: status and JSON body (`Value::Null` when the body is not JSON).
pub type Reply = (StatusCode, Value);

impl XrpcClient {
    #[must_use]
    pub fn new(base: &str, aud: &str, identity: AtprotoIdentity) -> Self {
        Self { http: reqwest::Client::new(), base: base.to_owned(), aud: aud.to_owned(), identity: Arc::new(identity) }
    }

    /// The caller's DID.
    #[must_use]
    pub fn did(&self) -> &str {
        &self.identity.did
    }

    /// `GET /xrpc/<nsid>?params` with a fresh token.
    pub async fn query(&self, nsid: &str, params: &[(&str, String)]) -> Reply {
        let token = self.identity.service_token(&self.aud, nsid);
        self.query_with_token(nsid, params, Some(&token)).await
    }

    /// `POST /xrpc/<nsid>` with a JSON body and a fresh token.
    pub async fn procedure(&self, nsid: &str, body: &Value) -> Reply {
        let token = self.identity.service_token(&self.aud, nsid);
        self.procedure_with_token(nsid, body, Some(&token)).await
    }

    /// Opens an event subscription: a ticket from `getSubscriptionTicket` (for `convo` when
    /// given), then the WebSocket it names, resuming after `cursor` when given.
    pub async fn subscribe(&self, convo: Option<&str>, cursor: Option<&str>) -> crate::events::EventStream {
        let url = self.subscription_url(convo, cursor).await;
        crate::events::EventStream::connect(&url).await.unwrap()
    }

    /// The URL to open a subscription with a fresh ticket.
    pub async fn subscription_url(&self, convo: Option<&str>, cursor: Option<&str>) -> String {
        let input = match convo {
            Some(convo) => serde_json::json!({"convoId": convo}),
            None => serde_json::json!({}),
        };
        let (status, body) = self.procedure("blue.catbird.mls.getSubscriptionTicket", &input).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        // The endpoint names the public host; tests reach the server at its local address.
        let endpoint = body["endpoint"].as_str().unwrap();
        assert!(endpoint.ends_with("/xrpc/blue.catbird.mls.subscribeConvoEvents"), "{endpoint}");
        let local = format!("{}/xrpc/blue.catbird.mls.subscribeConvoEvents", self.base.replacen("http", "ws", 1));
        let mut url = url::Url::parse(&local).unwrap();
        url.query_pairs_mut().append_pair("ticket", body["ticket"].as_str().unwrap());
        if let Some(cursor) = cursor {
            url.query_pairs_mut().append_pair("cursor", cursor);
        }
        if let Some(convo) = convo {
            url.query_pairs_mut().append_pair("convoId", convo);
        }
        url.to_string()
    }

    /// `POST /xrpc/<nsid>?params` with a raw body, and its Content-Type when given.
    pub async fn upload(
        &self,
        nsid: &str,
        params: &[(&str, String)],
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> Reply {
        let token = self.identity.service_token(&self.aud, nsid);
        let mut request = self.http.post(format!("{}/xrpc/{nsid}", self.base)).query(params).bearer_auth(token);
        if let Some(content_type) = content_type {
            request = request.header(reqwest::header::CONTENT_TYPE, content_type);
        }
        read(request.body(body).send().await.unwrap()).await
    }

    /// `GET /xrpc/<nsid>?params` answered with bytes: the status, the Content-Type and the body
    /// (an error's JSON body comes back as bytes too).
    pub async fn download(&self, nsid: &str, params: &[(&str, String)]) -> (StatusCode, Option<String>, Vec<u8>) {
        let token = self.identity.service_token(&self.aud, nsid);
        let response =
            self.http.get(format!("{}/xrpc/{nsid}", self.base)).query(params).bearer_auth(token).send().await.unwrap();
        let status = response.status();
        let content_type =
            response.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
        (status, content_type, response.bytes().await.unwrap().to_vec())
    }

    /// A query with the given token (or none).
    pub async fn query_with_token(&self, nsid: &str, params: &[(&str, String)], token: Option<&str>) -> Reply {
        let mut request = self.http.get(format!("{}/xrpc/{nsid}", self.base)).query(params);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        read(request.send().await.unwrap()).await
    }

    /// A procedure with the given token (or none).
    pub async fn procedure_with_token(&self, nsid: &str, body: &Value, token: Option<&str>) -> Reply {
        let mut request = self.http.post(format!("{}/xrpc/{nsid}", self.base)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        read(request.send().await.unwrap()).await
    }
}

async fn read(response: reqwest::Response) -> Reply {
    let status = response.status();
    let body = response.bytes().await.unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// The service DID test servers run the MLS surface under.
pub const SERVICE_DID: &str = "did:web:mls.obscura.test";

/// A server with the MLS surface on, and the fake PLC directory its users live in.
pub struct MlsWorld {
    pub plc: crate::plc::FakePlc,
    pub server: crate::TestServer,
}

impl MlsWorld {
    pub async fn start() -> Self {
        Self::with_flags(&[]).await
    }

    /// A server with extra flags (the MLS ones are filled in unless given).
    pub async fn with_flags(flags: &[(&str, &str)]) -> Self {
        Self::build(flags, None).await
    }

    /// A server whose clock the test turns.
    pub async fn with_clock(
        flags: &[(&str, &str)],
        clock: std::sync::Arc<obscura_server::adapters::clock::ManualClock>,
    ) -> Self {
        Self::build(flags, Some(clock)).await
    }

    async fn build(
        flags: &[(&str, &str)],
        clock: Option<std::sync::Arc<obscura_server::adapters::clock::ManualClock>>,
    ) -> Self {
        let plc = crate::plc::FakePlc::start().await;
        let plc_url = plc.url().to_owned();
        let mut all: Vec<(&str, &str)> = flags.to_vec();
        for (flag, value) in [("--service-did", SERVICE_DID), ("--plc-directory-url", plc_url.as_str())] {
            if !all.iter().any(|(set, _)| *set == flag) {
                all.push((flag, value));
            }
        }
        let server = match clock {
            Some(clock) => crate::TestServer::with_clock(&all, clock).await,
            None => crate::TestServer::with_flags(&all).await,
        };
        Self { plc, server }
    }

    /// Another replica of the same service (same directory, same service DID) on `flags`.
    pub async fn replica(&self, flags: &[(&str, &str)]) -> crate::TestServer {
        let mut all: Vec<(&str, &str)> = flags.to_vec();
        all.extend([("--service-did", SERVICE_DID), ("--plc-directory-url", self.plc.url())]);
        crate::TestServer::with_flags(&all).await
    }

    /// A client of `server` for an identity already published here.
    #[must_use]
    pub fn client_of(&self, server: &crate::TestServer, identity: Arc<AtprotoIdentity>) -> XrpcClient {
        XrpcClient { http: reqwest::Client::new(), base: server.base.clone(), aud: SERVICE_DID.to_owned(), identity }
    }

    /// A new user with a K-256 key, published in the directory.
    pub fn user(&self) -> XrpcClient {
        self.user_with(crate::atproto::Curve::K256)
    }

    /// A new user with a key on `curve`, published in the directory.
    pub fn user_with(&self, curve: crate::atproto::Curve) -> XrpcClient {
        let identity = AtprotoIdentity::generate(curve);
        self.plc.publish(&identity.did, &identity.multikey());
        self.client(identity)
    }

    /// A client for an identity (published or not).
    #[must_use]
    pub fn client(&self, identity: AtprotoIdentity) -> XrpcClient {
        XrpcClient::new(&self.server.base, SERVICE_DID, identity)
    }
}
