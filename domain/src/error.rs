//! The one infrastructure failure every port and every use case reports: a
//! problem the caller cannot fix, sorted by what a client should do about it.
//!
//! A leaf module: it imports no sibling. Use-case errors carry it as their
//! `Failure` variant; ports with a domain refusal of their own (an email
//! already taken) wrap it beside that refusal.

/// An infrastructure failure.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Password hashing is saturated: retry after `retry_after_secs`.
    #[error("overloaded")]
    Overloaded { retry_after_secs: u64 },
    /// Storage (or another backing service) is unreachable or timed out: retry later.
    #[error("storage unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// Anything else: a bug, corrupt data, a broken key.
    #[error(transparent)]
    Unexpected(anyhow::Error),
}

impl Failure {
    /// Wraps any error as `Unexpected`.
    pub fn unexpected<E>(error: E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        Self::Unexpected(anyhow::Error::new(error))
    }

    /// An `Unexpected` failure from a message.
    pub fn msg(message: impl std::fmt::Display + std::fmt::Debug + Send + Sync + 'static) -> Self {
        Self::Unexpected(anyhow::Error::msg(message))
    }

    /// An `Unavailable` failure from a message.
    pub fn unavailable(
        message: impl std::fmt::Display + std::fmt::Debug + Send + Sync + 'static,
    ) -> Self {
        Self::Unavailable(anyhow::Error::msg(message))
    }

    /// This failure as `Unavailable` (a backing service that must answer before
    /// anything else happens, such as the lockout counters, fails closed).
    pub fn into_unavailable(self) -> Self {
        match self {
            Self::Unexpected(source) => Self::Unavailable(source),
            other => other,
        }
    }

    /// The same failure again, for answering several waiters of one batch
    /// (`anyhow::Error` is not `Clone`: the copy keeps the message chain).
    pub fn duplicate(&self) -> Self {
        match self {
            Self::Overloaded { retry_after_secs } => Self::Overloaded {
                retry_after_secs: *retry_after_secs,
            },
            Self::Unavailable(source) => Self::Unavailable(anyhow::anyhow!("{source:#}")),
            Self::Unexpected(source) => Self::Unexpected(anyhow::anyhow!("{source:#}")),
        }
    }
}
