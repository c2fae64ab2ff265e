//! A gateway WebSocket client for tests: decodes frames, sends acknowledgements.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use obscura_proto::v1::web_socket_frame::Payload;
use obscura_proto::v1::{AckMessage, Envelope, WebSocketFrame};
use prost::Message as _;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The content of an envelope's message as UTF-8 (tests send text).
#[must_use]
pub fn text(envelope: &Envelope) -> String {
    let message = envelope.message.as_ref().expect("an envelope carries a message");
    String::from_utf8(message.content.clone()).expect("UTF-8 content")
}

/// A final text frame carrying bytes that are not UTF-8 (RFC 6455 §8.1 makes it a protocol
/// error), sent raw because a `Message::Text` cannot hold them.
#[must_use]
pub fn invalid_text_frame() -> Message {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    Message::Frame(Frame::message(vec![0xc3, 0x28, 0xff], OpCode::Data(Data::Text), true))
}

/// What the server did next.
#[derive(Debug)]
pub enum Next {
    Frame(WebSocketFrame),
    Closed(Option<CloseFrame>),
    Pong(Vec<u8>),
    Timeout,
}

/// A connected gateway session.
pub struct GatewayClient {
    socket: Socket,
}

impl GatewayClient {
    /// Connects with an access token.
    pub async fn connect(ws_base: &str, token: &str) -> Result<Self, Box<tokio_tungstenite::tungstenite::Error>> {
        let (socket, _) =
            tokio_tungstenite::connect_async(format!("{ws_base}/v1/gateway?token={token}")).await.map_err(Box::new)?;
        Ok(Self { socket })
    }

    /// Connects over TLS, trusting only what `tls` trusts.
    pub async fn connect_tls(
        wss_base: &str,
        token: &str,
        tls: Arc<rustls::ClientConfig>,
    ) -> Result<Self, Box<tokio_tungstenite::tungstenite::Error>> {
        let url = format!("{wss_base}/v1/gateway?token={token}");
        let connector = tokio_tungstenite::Connector::Rustls(tls);
        let (socket, _) = tokio_tungstenite::connect_async_tls_with_config(url, None, false, Some(connector))
            .await
            .map_err(Box::new)?;
        Ok(Self { socket })
    }

    /// The next frame, close or pong within `within` (server pings are skipped).
    pub async fn next(&mut self, within: Duration) -> Next {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let Ok(message) = tokio::time::timeout_at(deadline, self.socket.next()).await else {
                return Next::Timeout;
            };
            match message {
                Some(Ok(Message::Binary(bytes))) => {
                    return Next::Frame(WebSocketFrame::decode(bytes).expect("server frames decode"));
                }
                Some(Ok(Message::Close(frame))) => return Next::Closed(frame),
                Some(Ok(Message::Pong(payload))) => return Next::Pong(payload.to_vec()),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Next::Closed(None),
            }
        }
    }

    /// The close code and reason the server ends the session with (skipping other frames);
    /// `None` on timeout or a close without a frame.
    pub async fn close_frame(&mut self, within: Duration) -> Option<(u16, String)> {
        loop {
            match self.next(within).await {
                Next::Closed(frame) => return frame.map(|f| (u16::from(f.code), f.reason.to_string())),
                Next::Frame(_) | Next::Pong(_) => {}
                Next::Timeout => return None,
            }
        }
    }

    /// The next envelope (skipping any other frame), or `None` on timeout or close.
    pub async fn envelope(&mut self, within: Duration) -> Option<Envelope> {
        loop {
            match self.next(within).await {
                Next::Frame(WebSocketFrame { payload: Some(Payload::Envelope(envelope)) }) => return Some(envelope),
                Next::Frame(_) | Next::Pong(_) => {}
                Next::Closed(_) | Next::Timeout => return None,
            }
        }
    }

    /// Exactly `n` envelopes, each within `each`.
    pub async fn envelopes(&mut self, n: usize, each: Duration) -> Vec<Envelope> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            match self.envelope(each).await {
                Some(envelope) => out.push(envelope),
                None => panic!("expected {n} envelopes, got {}", out.len()),
            }
        }
        out
    }

    /// Acknowledges with the legacy single id and/or the bulk list.
    pub async fn ack(&mut self, single: Option<&str>, bulk: &[String]) {
        let frame = WebSocketFrame {
            payload: Some(Payload::Ack(AckMessage {
                message_id: single.unwrap_or_default().to_owned(),
                message_ids: bulk.to_vec(),
            })),
        };
        self.send_binary(frame.encode_to_vec()).await;
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.socket.send(Message::Binary(bytes.into())).await.expect("send frame");
    }

    pub async fn send_text(&mut self, text: &str) {
        self.socket.send(Message::Text(text.into())).await.expect("send text");
    }

    /// Sends a text frame whose payload is not UTF-8: a protocol violation.
    pub async fn send_invalid_text(&mut self) {
        self.socket.send(invalid_text_frame()).await.expect("send raw frame");
    }

    /// Sends a ping and waits for the matching pong, skipping other traffic.
    pub async fn ping(&mut self, payload: &[u8], within: Duration) -> bool {
        self.socket.send(Message::Ping(payload.to_vec().into())).await.expect("send ping");
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Next::Pong(got) if got == payload => return true,
                Next::Frame(_) | Next::Pong(_) => {}
                Next::Closed(_) | Next::Timeout => return false,
            }
        }
    }

    /// Closes with 1000 and returns the close frame the server answers with; `None` when it
    /// ends the connection without one.
    pub async fn close_normally(mut self) -> Option<(u16, String)> {
        use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
        let frame = CloseFrame { code: CloseCode::Normal, reason: "bye".into() };
        let _ = self.socket.close(Some(frame)).await;
        loop {
            match tokio::time::timeout(Duration::from_secs(10), self.socket.next()).await {
                Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|f| (u16::from(f.code), f.reason.to_string())),
                Ok(Some(Ok(_))) => {}
                _ => return None,
            }
        }
    }

    /// Closes from the client side and waits until the server has finished the session (its
    /// buffered acknowledgements are written by then).
    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
        let _ = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(Ok(_)) = self.socket.next().await {}
        })
        .await;
    }
}
