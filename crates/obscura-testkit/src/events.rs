//! A `subscribeConvoEvents` client for tests: connects with a ticket and decodes the DAG-CBOR
//! frames (header, then body) into JSON; CBOR byte strings become arrays of numbers, which
//! `cbor_bytes` turns back into bytes.

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One frame of the stream.
#[derive(Debug, Clone)]
pub struct EventFrame {
    /// 1 for an event, -1 for an error.
    pub op: i64,
    /// The event type (`#messageEvent`, ...); none on errors.
    pub t: Option<String>,
    pub body: Value,
}

impl EventFrame {
    /// The event's cursor.
    #[must_use]
    pub fn cursor(&self) -> String {
        self.body["cursor"].as_str().unwrap_or_else(|| panic!("no cursor: {self:?}")).to_owned()
    }

    /// The error name of an error frame.
    #[must_use]
    pub fn error(&self) -> Option<&str> {
        (self.op == -1).then(|| self.body["error"].as_str()).flatten()
    }
}

/// What the server did next.
#[derive(Debug)]
pub enum StreamNext {
    Frame(EventFrame),
    /// Closed, with the close code if one was sent.
    Closed(Option<u16>),
    Timeout,
}

/// Decodes a frame: its header and its body. Panics on anything else (a test failure).
#[must_use]
pub fn decode_frame(bytes: &[u8]) -> (Value, Value) {
    let mut reader = std::io::Cursor::new(bytes);
    let header: ipld_core::ipld::Ipld = serde_ipld_dagcbor::de::from_reader_once(&mut reader).expect("a header");
    let body: ipld_core::ipld::Ipld = serde_ipld_dagcbor::de::from_reader_once(&mut reader).expect("a body");
    assert_eq!(reader.position(), bytes.len() as u64, "nothing follows the body");
    (serde_json::to_value(header).unwrap(), serde_json::to_value(body).unwrap())
}

/// The bytes of a decoded CBOR byte string.
#[must_use]
pub fn cbor_bytes(value: &Value) -> Vec<u8> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not bytes: {value}"))
        .iter()
        .map(|b| u8::try_from(b.as_u64().unwrap()).unwrap())
        .collect()
}

/// A connected subscription.
pub struct EventStream {
    socket: Socket,
}

impl EventStream {
    /// Connects to a full `ws://…/subscribeConvoEvents?…` URL.
    pub async fn connect(url: &str) -> Result<Self, Box<tokio_tungstenite::tungstenite::Error>> {
        let (socket, _) = tokio_tungstenite::connect_async(url).await.map_err(Box::new)?;
        Ok(Self { socket })
    }

    /// The next frame or close within `within` (pings and pongs are skipped).
    pub async fn next(&mut self, within: Duration) -> StreamNext {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let Ok(message) = tokio::time::timeout_at(deadline, self.socket.next()).await else {
                return StreamNext::Timeout;
            };
            match message {
                Some(Ok(Message::Binary(bytes))) => {
                    let (header, body) = decode_frame(&bytes);
                    return StreamNext::Frame(EventFrame {
                        op: header["op"].as_i64().expect("op"),
                        t: header["t"].as_str().map(str::to_owned),
                        body,
                    });
                }
                Some(Ok(Message::Close(frame))) => return StreamNext::Closed(frame.map(|f| u16::from(f.code))),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(other)) => panic!("unexpected message: {other:?}"),
                Some(Err(_)) | None => return StreamNext::Closed(None),
            }
        }
    }

    /// The next frame; panics if none comes within `within`.
    pub async fn frame(&mut self, within: Duration) -> EventFrame {
        match self.next(within).await {
            StreamNext::Frame(frame) => frame,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    /// The next `n` frames.
    pub async fn frames(&mut self, n: usize, within: Duration) -> Vec<EventFrame> {
        let mut frames = Vec::with_capacity(n);
        for _ in 0..n {
            frames.push(self.frame(within).await);
        }
        frames
    }

    /// Sends a binary message (the stream is one-way: the server only checks its size).
    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.socket.send(Message::Binary(bytes.into())).await.expect("send frame");
    }

    /// Sends a text frame whose payload is not UTF-8: a protocol violation.
    pub async fn send_invalid_text(&mut self) {
        self.socket.send(crate::gateway::invalid_text_frame()).await.expect("send raw frame");
    }

    /// Closes the connection.
    pub async fn close(mut self) {
        let _ = self.socket.send(Message::Close(None)).await;
        let _ =
            tokio::time::timeout(Duration::from_secs(2), async { while self.socket.next().await.is_some() {} }).await;
    }
}
