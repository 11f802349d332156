//! A minimal HTTP/1.1 keep-alive client on hyper: one TCP connection, one
//! request at a time, nothing else. Kept this thin so that the load generator,
//! which shares the machine's cores with the server, costs as little CPU as
//! possible.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Longest time one request may take before it counts as a transport error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What a workload asks for: one request.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: Method,
    pub path: String,
    pub bearer: Option<String>,
    pub json: Option<Bytes>,
}

impl Call {
    pub fn get(path: impl Into<String>) -> Self {
        Self {
            method: Method::GET,
            path: path.into(),
            bearer: None,
            json: None,
        }
    }

    pub fn post(path: impl Into<String>, json: impl Into<Bytes>) -> Self {
        Self {
            method: Method::POST,
            path: path.into(),
            bearer: None,
            json: Some(json.into()),
        }
    }

    pub fn bearer(mut self, token: &str) -> Self {
        self.bearer = Some(token.to_owned());
        self
    }
}

/// One keep-alive connection to the server.
pub struct Connection {
    sender: http1::SendRequest<Full<Bytes>>,
    host: HeaderValue,
}

impl Connection {
    /// Opens a TCP connection (no Nagle) and the HTTP/1.1 handshake.
    pub async fn open(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP/1.1 handshake")?;
        // The driver ends with the connection; an error shows up as a failed
        // `send` on the sender side, which is where it is reported.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Self {
            sender,
            host: HeaderValue::from_str(&addr.to_string())?,
        })
    }

    /// Sends `call` and reads the whole response.
    pub async fn send(&mut self, call: &Call) -> anyhow::Result<(StatusCode, Bytes)> {
        let mut builder = Request::builder()
            .method(call.method.clone())
            .uri(call.path.as_str())
            .header(HOST, self.host.clone());
        if let Some(token) = &call.bearer {
            builder = builder.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match &call.json {
            Some(json) => {
                builder = builder.header(CONTENT_TYPE, "application/json");
                Full::new(json.clone())
            }
            None => Full::new(Bytes::new()),
        };
        let request = builder.body(body).context("building a request")?;
        let exchange = async {
            self.sender
                .ready()
                .await
                .context("connection closed by the server")?;
            let response = self
                .sender
                .send_request(request)
                .await
                .context("sending the request")?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .context("reading the response body")?
                .to_bytes();
            anyhow::Ok((status, body))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| anyhow!("no response within {REQUEST_TIMEOUT:?}"))?
    }
}

/// One request on a fresh connection (readiness probes).
pub async fn once(addr: SocketAddr, call: &Call) -> anyhow::Result<(StatusCode, Bytes)> {
    let mut connection = Connection::open(addr).await?;
    connection.send(call).await
}
