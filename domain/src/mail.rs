//! The email Portcullis sends: who gets which message, with which one-time
//! token, and until when it is worth delivering. How a message is worded,
//! rendered and delivered is the mail adapter's business (templates, SMTP or
//! files); the domain only says what must be said.
//!
//! Messages are written to the outbox in the same transaction as the state
//! change that causes them, by the repository that makes the change.

use time::{Duration, OffsetDateTime};

use crate::email::Email;
use crate::ids::UserId;
use crate::one_time::OneTimeToken;

/// How long a notice (a message without a token) is worth delivering.
pub const NOTICE_TTL: Duration = Duration::days(3);

/// Which message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MailKind {
    /// A link that confirms the sign-up address.
    VerifyEmail,
    /// A link that sets a new password.
    ResetPassword,
    /// A link, sent to a new address, that confirms an email change.
    ConfirmEmailChange,
    /// Notice: the password was changed.
    PasswordChanged,
    /// Notice: the password was reset through an emailed link.
    PasswordReset,
    /// Notice to the old address: a change to another address was asked for.
    EmailChangeRequested,
    /// Notice to the old address: the account's address changed.
    EmailChanged,
    /// Notice: the account was deleted.
    AccountDeleted,
    /// Notice: a second factor was turned on.
    SecondFactorEnabled,
    /// Notice: a second factor was removed.
    SecondFactorDisabled,
    /// Notice: new recovery codes replaced the old ones.
    RecoveryCodesRegenerated,
    /// Notice: a recovery code was used.
    RecoveryCodeUsed,
}

impl MailKind {
    /// Every kind.
    pub const ALL: [Self; 12] = [
        Self::VerifyEmail,
        Self::ResetPassword,
        Self::ConfirmEmailChange,
        Self::PasswordChanged,
        Self::PasswordReset,
        Self::EmailChangeRequested,
        Self::EmailChanged,
        Self::AccountDeleted,
        Self::SecondFactorEnabled,
        Self::SecondFactorDisabled,
        Self::RecoveryCodesRegenerated,
        Self::RecoveryCodeUsed,
    ];

    /// The stored, stable name (also the template's file name).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::ResetPassword => "reset_password",
            Self::ConfirmEmailChange => "confirm_email_change",
            Self::PasswordChanged => "password_changed",
            Self::PasswordReset => "password_reset",
            Self::EmailChangeRequested => "email_change_requested",
            Self::EmailChanged => "email_changed",
            Self::AccountDeleted => "account_deleted",
            Self::SecondFactorEnabled => "second_factor_enabled",
            Self::SecondFactorDisabled => "second_factor_disabled",
            Self::RecoveryCodesRegenerated => "recovery_codes_regenerated",
            Self::RecoveryCodeUsed => "recovery_code_used",
        }
    }

    /// Parses a stored name.
    pub fn parse(stored: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == stored)
    }
}

/// One message to send.
#[derive(Debug, Clone)]
pub struct Mail {
    pub kind: MailKind,
    /// The account it is about (kept after the account is deleted).
    pub user: UserId,
    pub to: Email,
    /// The token its link carries, for the kinds that have a link.
    pub token: Option<OneTimeToken>,
    /// The other address of an email change, when the message names it.
    pub new_email: Option<Email>,
    /// Not delivered by then, it is dropped (with its token, it is useless).
    pub expires_at: OffsetDateTime,
}

impl Mail {
    /// A message with a link carrying `token`, useless after `expires_at`.
    pub fn link(
        kind: MailKind,
        user: UserId,
        to: Email,
        token: OneTimeToken,
        expires_at: OffsetDateTime,
    ) -> Self {
        Self {
            kind,
            user,
            to,
            token: Some(token),
            new_email: None,
            expires_at,
        }
    }

    /// A notice without a link, sent at `now`.
    pub fn notice(kind: MailKind, user: UserId, to: Email, now: OffsetDateTime) -> Self {
        Self {
            kind,
            user,
            to,
            token: None,
            new_email: None,
            expires_at: now + NOTICE_TTL,
        }
    }

    /// The same message, naming the other address of an email change.
    #[must_use]
    pub fn naming(mut self, new_email: Email) -> Self {
        self.new_email = Some(new_email);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for kind in MailKind::ALL {
            assert_eq!(MailKind::parse(kind.as_str()), Some(kind));
        }
    }
}
