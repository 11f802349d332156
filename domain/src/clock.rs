//! Time is a port so tests can fix it.

use time::OffsetDateTime;

/// The source of "now", always in UTC.
pub trait Clock: Send + Sync + 'static {
    /// The current instant in UTC.
    fn now(&self) -> OffsetDateTime;
}
