//! Errors shared by every port: an infrastructure failure the caller cannot fix.

/// An infrastructure failure (database down, I/O error, ...). Adapters wrap the
/// driver error; the domain only carries it upwards.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Unexpected(#[from] pub anyhow::Error);

impl Unexpected {
    /// Wraps any error into an `Unexpected`.
    pub fn new<E>(error: E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        Self(anyhow::Error::new(error))
    }

    /// Builds an `Unexpected` from a message.
    pub fn msg(message: impl std::fmt::Display + std::fmt::Debug + Send + Sync + 'static) -> Self {
        Self(anyhow::Error::msg(message))
    }
}

/// A failure of a storage port.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The storage is unreachable or timed out; the request may be retried.
    #[error("storage unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}
