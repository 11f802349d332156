//! The refresh rule, written once: what a presented refresh token may do.
//! Every `SessionRepository` adapter (PostgreSQL under the session's row
//! lock, the SQLite batch and the SQLite supersede under `BEGIN IMMEDIATE`,
//! the in-memory fake under its mutex) reads the session and the token,
//! asks [`decide_rotation`] or [`decide_refresh`], and writes only on
//! `Rotated` or `GraceReplay`.
//!
//! The invariant it keeps: a session has exactly one current refresh token.
//! Rotating the current token replaces it; a replay of a rotated token
//! inside the grace interval supersedes the current one (which keeps only
//! the grace interval); any other token of the session revokes it.

use time::{Duration, OffsetDateTime};

use super::{RefreshRecord, RotateOutcome, Session};
use crate::ids::SessionId;

/// What a refresh with a presented token does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshDecision {
    /// The token is the session's current one: rotate it.
    Rotate,
    /// The token was rotated less than the grace interval ago: a new token
    /// supersedes the session's current one.
    GraceReplay,
    /// The token was rotated at least the grace interval ago: reuse, the
    /// session must be revoked.
    Reuse,
    /// The session is revoked, expired or missing, or the token is not one
    /// of its: nothing may change.
    Refused,
}

/// Where the presented token stands in its session.
enum Standing {
    Current,
    RotatedAt(OffsetDateTime),
    Refused,
}

/// An inactive (revoked, expired or missing) session wins over everything;
/// then the token must belong to the session.
fn standing(
    session_id: SessionId,
    session: Option<&Session>,
    token: Option<&RefreshRecord>,
    now: OffsetDateTime,
) -> Standing {
    if !session.is_some_and(|s| s.id == session_id && s.is_active(now)) {
        return Standing::Refused;
    }
    match token {
        Some(record) if record.session_id == session_id => match record.rotated_at {
            None => Standing::Current,
            Some(at) => Standing::RotatedAt(at),
        },
        _ => Standing::Refused,
    }
}

/// Decides the rotation of a token of session `session_id` at `now`, given
/// the session and the token's record as storage holds them (either may be
/// missing): `Rotated` when the token is current, `AlreadyRotated` with its
/// stored rotation time when an earlier request (or an earlier rotation of
/// the same batch) rotated it, `SessionInactive` otherwise.
pub fn decide_rotation(
    session_id: SessionId,
    session: Option<&Session>,
    token: Option<&RefreshRecord>,
    now: OffsetDateTime,
) -> RotateOutcome {
    match standing(session_id, session, token, now) {
        Standing::Current => RotateOutcome::Rotated,
        Standing::RotatedAt(rotated_at) => RotateOutcome::AlreadyRotated { rotated_at },
        Standing::Refused => RotateOutcome::SessionInactive,
    }
}

/// Decides a refresh of a token of session `session_id` at `now` under the
/// grace interval `grace`, given the rows as storage holds them.
pub fn decide_refresh(
    session_id: SessionId,
    session: Option<&Session>,
    token: Option<&RefreshRecord>,
    now: OffsetDateTime,
    grace: Duration,
) -> RefreshDecision {
    match standing(session_id, session, token, now) {
        Standing::Current => RefreshDecision::Rotate,
        Standing::RotatedAt(rotated_at) => decide_replay(rotated_at, now, grace),
        Standing::Refused => RefreshDecision::Refused,
    }
}

/// A token of an active session, rotated at `rotated_at` (as stored, never
/// the time a race was lost), presented again at `now`: `GraceReplay`
/// strictly inside the grace interval, `Reuse` from its end on. With a grace
/// of zero nothing is inside it, not even a replay in the same millisecond
/// (a lost race), so grace 0 never hands out a second pair. A rotation time
/// ahead of `now` (another instance's clock) counts as just rotated.
pub fn decide_replay(
    rotated_at: OffsetDateTime,
    now: OffsetDateTime,
    grace: Duration,
) -> RefreshDecision {
    if grace.is_positive() && now - rotated_at < grace {
        RefreshDecision::GraceReplay
    } else {
        RefreshDecision::Reuse
    }
}

#[cfg(test)]
mod tests {
    use time::Duration;
    use time::macros::datetime;

    use super::*;
    use crate::context::ClientInfo;
    use crate::ids::UserId;
    use crate::session::{RevokeReason, SessionPolicy};

    const GRACE: Duration = Duration::seconds(10);

    fn fixture() -> (Session, RefreshRecord, OffsetDateTime) {
        let now = datetime!(2026-01-01 0:00 UTC);
        let session = Session::open(
            UserId::new(),
            now,
            &SessionPolicy::default(),
            ClientInfo::default(),
        );
        let record = RefreshRecord {
            session_id: session.id,
            created_at: now,
            rotated_at: None,
        };
        (session, record, now + Duration::minutes(1))
    }

    #[test]
    fn a_current_token_of_an_active_session_rotates() {
        let (session, record, now) = fixture();
        assert_eq!(
            decide_rotation(session.id, Some(&session), Some(&record), now),
            RotateOutcome::Rotated
        );
    }

    #[test]
    fn a_rotated_token_lost_the_race_and_says_when() {
        let (session, mut record, now) = fixture();
        let rotated_at = now - Duration::seconds(3);
        record.rotated_at = Some(rotated_at);
        assert_eq!(
            decide_rotation(session.id, Some(&session), Some(&record), now),
            RotateOutcome::AlreadyRotated { rotated_at }
        );
    }

    #[test]
    fn a_missing_or_foreign_token_is_refused() {
        let (session, record, now) = fixture();
        assert_eq!(
            decide_rotation(session.id, Some(&session), None, now),
            RotateOutcome::SessionInactive
        );
        let foreign = RefreshRecord {
            session_id: SessionId::new(),
            ..record
        };
        assert_eq!(
            decide_rotation(session.id, Some(&session), Some(&foreign), now),
            RotateOutcome::SessionInactive
        );
        assert_eq!(
            decide_refresh(session.id, Some(&session), Some(&foreign), now, GRACE),
            RefreshDecision::Refused
        );
    }

    #[test]
    fn an_inactive_session_wins_over_a_lost_race() {
        let (mut session, mut record, now) = fixture();
        record.rotated_at = Some(now);
        assert_eq!(
            decide_rotation(session.id, None, Some(&record), now),
            RotateOutcome::SessionInactive
        );
        let expired = session.absolute_expires_at + Duration::seconds(1);
        assert_eq!(
            decide_rotation(session.id, Some(&session), Some(&record), expired),
            RotateOutcome::SessionInactive
        );
        session.revoked_at = Some(now);
        session.revoked_reason = Some(RevokeReason::Logout);
        record.rotated_at = None;
        assert_eq!(
            decide_rotation(session.id, Some(&session), Some(&record), now),
            RotateOutcome::SessionInactive
        );
    }

    #[test]
    fn a_current_token_rotates_whatever_the_grace() {
        let (session, record, now) = fixture();
        for grace in [Duration::ZERO, GRACE] {
            assert_eq!(
                decide_refresh(session.id, Some(&session), Some(&record), now, grace),
                RefreshDecision::Rotate
            );
        }
    }

    #[test]
    fn a_rotated_token_is_a_grace_replay_strictly_inside_the_interval() {
        let (session, mut record, now) = fixture();
        let decide = |record: &RefreshRecord| {
            decide_refresh(session.id, Some(&session), Some(record), now, GRACE)
        };
        record.rotated_at = Some(now - GRACE + Duration::milliseconds(1));
        assert_eq!(decide(&record), RefreshDecision::GraceReplay);
        record.rotated_at = Some(now - GRACE);
        assert_eq!(decide(&record), RefreshDecision::Reuse);
        record.rotated_at = Some(now - Duration::days(1));
        assert_eq!(decide(&record), RefreshDecision::Reuse);
        // Rotated "later" by an instance whose clock runs ahead: just rotated.
        record.rotated_at = Some(now + Duration::seconds(1));
        assert_eq!(decide(&record), RefreshDecision::GraceReplay);
    }

    #[test]
    fn with_grace_zero_even_a_lost_race_in_the_same_instant_is_reuse() {
        let (_, _, now) = fixture();
        for rotated_at in [
            now,
            now + Duration::seconds(1),
            now - Duration::milliseconds(1),
        ] {
            assert_eq!(
                decide_replay(rotated_at, now, Duration::ZERO),
                RefreshDecision::Reuse
            );
        }
    }

    #[test]
    fn an_inactive_session_refuses_even_inside_the_grace_interval() {
        let (mut session, mut record, now) = fixture();
        record.rotated_at = Some(now);
        session.revoked_at = Some(now);
        session.revoked_reason = Some(RevokeReason::RefreshTokenReuse);
        assert_eq!(
            decide_refresh(session.id, Some(&session), Some(&record), now, GRACE),
            RefreshDecision::Refused
        );
        assert_eq!(
            decide_refresh(session.id, None, Some(&record), now, GRACE),
            RefreshDecision::Refused
        );
    }
}
