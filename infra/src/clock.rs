//! The real clock.

use portcullis_domain::clock::Clock;
use time::OffsetDateTime;

/// Reads the system clock, in UTC, truncated to milliseconds: storage keeps
/// milliseconds, and a value handed out must equal the value read back.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        let now = OffsetDateTime::now_utc();
        now.replace_millisecond(now.millisecond()).unwrap_or(now)
    }
}
