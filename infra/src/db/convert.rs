//! Instants as stored: `i64` Unix epoch milliseconds, UTC.
//!
//! Sub-millisecond precision is dropped on the way in, so a value read back
//! equals the stored one truncated to the millisecond.

use portcullis_domain::error::Failure;
use time::OffsetDateTime;

use super::error::corrupt;

const NANOS_PER_MILLI: i128 = 1_000_000;

/// The stored form of `instant`.
pub(crate) fn to_millis(instant: OffsetDateTime) -> i64 {
    let millis = instant.unix_timestamp_nanos().div_euclid(NANOS_PER_MILLI);
    // `OffsetDateTime` spans years -9999..=9999, about 3.2e14 ms: always fits.
    i64::try_from(millis).unwrap_or(if millis < 0 { i64::MIN } else { i64::MAX })
}

/// The instant a stored value stands for.
pub(crate) fn from_millis(millis: i64) -> Result<OffsetDateTime, Failure> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * NANOS_PER_MILLI)
        .map_err(|_| corrupt("timestamp out of range"))
}

/// The instant a nullable stored value stands for.
pub(crate) fn from_millis_opt(millis: Option<i64>) -> Result<Option<OffsetDateTime>, Failure> {
    millis.map(from_millis).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn millis_round_trip_truncates_below_a_millisecond() {
        let instant = datetime!(2026-11-24 12:00:00.123_456_789 UTC);
        let back = from_millis(to_millis(instant)).unwrap();
        assert_eq!(back, datetime!(2026-11-24 12:00:00.123 UTC));
    }

    #[test]
    fn instants_before_the_epoch_round_down() {
        let instant = datetime!(1969-12-31 23:59:59.999_5 UTC);
        assert_eq!(to_millis(instant), -1);
    }
}
