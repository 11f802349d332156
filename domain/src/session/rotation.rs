//! The rotation rule, written once: whether a presented refresh token may be
//! exchanged for a successor. Every `SessionRepository` adapter (PostgreSQL
//! under the session's row lock, the SQLite batch under `BEGIN IMMEDIATE`,
//! the in-memory fake under its mutex) reads the session and the token, asks
//! [`decide_rotation`], and writes only on `Rotated`.

use time::OffsetDateTime;

use super::{RefreshRecord, RotateOutcome, Session};
use crate::ids::SessionId;

/// Decides the rotation of a token of session `session_id` at `now`, given
/// the session and the token's record as storage holds them (either may be
/// missing).
///
/// An inactive (revoked, expired or missing) session wins over a lost race:
/// it answers `SessionInactive`. Otherwise the token must belong to the
/// session and still be current; a token already rotated (by an earlier
/// request, or an earlier rotation of the same batch) answers `AlreadyRotated`.
pub fn decide_rotation(
    session_id: SessionId,
    session: Option<&Session>,
    token: Option<&RefreshRecord>,
    now: OffsetDateTime,
) -> RotateOutcome {
    if !session.is_some_and(|s| s.id == session_id && s.is_active(now)) {
        return RotateOutcome::SessionInactive;
    }
    match token {
        Some(record) if record.session_id == session_id && record.rotated_at.is_none() => {
            RotateOutcome::Rotated
        }
        _ => RotateOutcome::AlreadyRotated,
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
    fn a_rotated_missing_or_foreign_token_lost_the_race() {
        let (session, mut record, now) = fixture();
        assert_eq!(
            decide_rotation(session.id, Some(&session), None, now),
            RotateOutcome::AlreadyRotated
        );
        let foreign = RefreshRecord {
            session_id: SessionId::new(),
            ..record.clone()
        };
        assert_eq!(
            decide_rotation(session.id, Some(&session), Some(&foreign), now),
            RotateOutcome::AlreadyRotated
        );
        record.rotated_at = Some(now);
        assert_eq!(
            decide_rotation(session.id, Some(&session), Some(&record), now),
            RotateOutcome::AlreadyRotated
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
}
