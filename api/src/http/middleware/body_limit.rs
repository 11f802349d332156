//! The body limit: no request body over [`MAX_BODY_BYTES`] reaches a handler,
//! whether or not it announces its length, and no body may take longer than
//! the body deadline to arrive.
//!
//! An answer given before the whole body was read (413, 408) says
//! `Connection: close`: the unread rest of the body is still on the wire, so
//! the connection cannot carry another request, and a pooled client must
//! know not to send one on it.
//!
//! A leaf: it imports no sibling, so the problem middleware can name the
//! limit in its 413 without importing back.

use std::time::Duration;

use poem::http::{HeaderValue, StatusCode, header};
use poem::{Endpoint, Middleware, Request, Response};

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Refuses bodies over [`MAX_BODY_BYTES`] with 413, whether or not they
/// announce their length, and bodies slower than `deadline` with 408.
pub struct BodyLimit {
    deadline: Duration,
}

impl BodyLimit {
    /// A limit whose bodies must have arrived whole within `deadline`.
    pub fn new(deadline: Duration) -> Self {
        Self { deadline }
    }
}

impl<E: Endpoint> Middleware<E> for BodyLimit {
    type Output = BodyLimitEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        BodyLimitEndpoint {
            inner: ep,
            deadline: self.deadline,
        }
    }
}

pub struct BodyLimitEndpoint<E> {
    inner: E,
    deadline: Duration,
}

/// An answer sent before the body was read whole: the connection closes
/// after it (the problem middleware keeps the header).
fn early(status: StatusCode) -> poem::Error {
    poem::Error::from_response(
        Response::builder()
            .status(status)
            .header(header::CONNECTION, HeaderValue::from_static("close"))
            .finish(),
    )
}

impl<E: Endpoint> Endpoint for BodyLimitEndpoint<E> {
    type Output = E::Output;

    async fn call(&self, mut req: Request) -> poem::Result<Self::Output> {
        let announced = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if announced.is_some_and(|len| len > MAX_BODY_BYTES as u64) {
            return Err(early(StatusCode::PAYLOAD_TOO_LARGE));
        }
        let body = req.take_body();
        if !body.is_empty() {
            let bytes = tokio::time::timeout(self.deadline, body.into_bytes_limit(MAX_BODY_BYTES))
                .await
                .map_err(|_| {
                    tracing::info!(
                        deadline_secs = self.deadline.as_secs_f32(),
                        "request body not received within the deadline; closing the connection"
                    );
                    early(StatusCode::REQUEST_TIMEOUT)
                })?
                .map_err(|_| early(StatusCode::PAYLOAD_TOO_LARGE))?;
            req.set_body(bytes);
        }
        self.inner.call(req).await
    }
}
