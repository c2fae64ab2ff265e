//! The v1 protocol as a client speaks it: register with real XEdDSA-signed keys, post
//! protobuf `EncryptedMessage`s, hold gateway sockets that acknowledge every envelope.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use futures_util::{SinkExt as _, StreamExt as _};
use obscura_proto::v1::web_socket_frame::Payload;
use obscura_proto::v1::{AckMessage, EncryptedMessage, WebSocketFrame};
use obscura_testkit::KeySet;
use prost::Message as _;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::error::BenchError;
use crate::target::Target;
use crate::tracker::{Counters, Tracker};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

const PASSWORD: &str = "bench-password-12345";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Registration retries on 503 (the server's password-hash queue is full) before giving up.
const REGISTER_ATTEMPTS: u32 = 20;

/// A registered user.
#[derive(Clone)]
pub struct Account {
    pub user_id: String,
    pub token: String,
}

/// HTTP and WebSocket access to one server.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    target: Target,
}

impl Api {
    pub fn new(target: Target) -> Result<Self, BenchError> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(4096)
            .timeout(Duration::from_secs(30))
            .tcp_nodelay(true)
            .build()?;
        Ok(Self { http, target })
    }

    /// Registers a fresh user, waiting out a busy password hasher.
    pub async fn register(&self) -> Result<Account, BenchError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let keys = KeySet::generate(1, 0..25);
            let username = format!("bench_{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
            let response = self
                .http
                .post(format!("{}/v1/users", self.target.http))
                .json(&keys.registration_json(&username, PASSWORD))
                .send()
                .await?;
            match response.status().as_u16() {
                201 => {
                    let body: serde_json::Value = response.json().await?;
                    let token = body["token"].as_str().unwrap_or_default().to_owned();
                    let user_id = jwt_subject(&token).ok_or_else(|| BenchError::Register {
                        status: 201,
                        body: "the token has no readable sub claim".to_owned(),
                    })?;
                    return Ok(Account { user_id, token });
                }
                429 => return Err(BenchError::RegisterRateLimited),
                503 if attempt < REGISTER_ATTEMPTS => tokio::time::sleep(Duration::from_millis(200)).await,
                status => return Err(BenchError::Register { status, body: response.text().await.unwrap_or_default() }),
            }
        }
    }

    /// Posts `content` from `from` to `to`; the status, or `None` when the request failed.
    pub async fn send(&self, from: &Account, to: &Account, content: Vec<u8>) -> Option<u16> {
        let body = EncryptedMessage { r#type: 2, content }.encode_to_vec();
        let response = self
            .http
            .post(format!("{}/v1/messages/{}", self.target.http, to.user_id))
            .bearer_auth(&from.token)
            .header("content-type", "application/x-protobuf")
            .body(body)
            .send()
            .await
            .ok()?;
        let status = response.status().as_u16();
        // Read the body so the connection goes back to the pool.
        let _ = response.bytes().await;
        Some(status)
    }

    /// Opens a gateway session for `account`.
    pub async fn connect(&self, account: &Account) -> Result<Socket, BenchError> {
        let url = format!("{}/v1/gateway?token={}", self.target.ws, account.token);
        match tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(url)).await {
            Ok(Ok((socket, _))) => Ok(socket),
            Ok(Err(error)) => Err(BenchError::Gateway(Box::new(error))),
            Err(_) => Err(BenchError::ConnectTimeout(CONNECT_TIMEOUT)),
        }
    }
}

/// The `sub` claim of a JWT, unverified: the user id the server gave us.
fn jwt_subject(token: &str) -> Option<String> {
    let payload = URL_SAFE_NO_PAD.decode(token.split('.').nth(1)?).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&payload).ok()?;
    claims["sub"].as_str().map(str::to_owned)
}

/// A gateway session running in its own task: it records and acknowledges every envelope until
/// told to stop, then closes and waits for the server to finish the session (which writes the
/// acknowledgements still buffered).
pub struct Receiver {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub fn spawn(socket: Socket, tracker: Arc<Tracker>, counters: Arc<Counters>) -> Self {
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(receive(socket, tracker, counters, stopped));
        Self { stop, task }
    }

    /// Whether the session ended before it was told to.
    pub fn ended(&self) -> bool {
        self.task.is_finished()
    }

    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

async fn receive(mut socket: Socket, tracker: Arc<Tracker>, counters: Arc<Counters>, mut stop: oneshot::Receiver<()>) {
    loop {
        let message = tokio::select! {
            _ = &mut stop => break,
            message = socket.next() => message,
        };
        match message {
            Some(Ok(Message::Binary(bytes))) => {
                let Ok(WebSocketFrame { payload: Some(Payload::Envelope(envelope)) }) = WebSocketFrame::decode(bytes)
                else {
                    continue;
                };
                tracker.delivered(envelope.message.as_ref().map_or(&[][..], |m| m.content.as_slice()));
                let ack = WebSocketFrame {
                    payload: Some(Payload::Ack(AckMessage {
                        message_id: String::new(),
                        message_ids: vec![envelope.id],
                    })),
                };
                if socket.send(Message::Binary(ack.encode_to_vec().into())).await.is_err() {
                    Counters::add(&counters.gateway_ended);
                    return;
                }
            }
            Some(Ok(Message::Close(_)) | Err(_)) | None => {
                Counters::add(&counters.gateway_ended);
                return;
            }
            Some(Ok(_)) => {}
        }
    }
    let _ = socket.close(None).await;
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async { while let Some(Ok(_)) = socket.next().await {} }).await;
}
