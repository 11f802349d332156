//! Authenticate: check the bearer token of a protected call, with no
//! storage round trip, and record the refusals.

use super::AuthService;
use crate::amr::AuthMethods;
use crate::audit::{AuthEvent, AuthEventKind, Outcome};
use crate::context::{Principal, RequestContext};
use crate::token::TokenRejection;

impl AuthService {
    /// Checks a bearer token: signature, claims, and that its session is not revoked.
    /// No storage round trip.
    ///
    /// # Errors
    /// The reason the token is refused.
    pub fn authenticate(&self, bearer: &str) -> Result<Principal, TokenRejection> {
        let claims = self.ports.verifier.verify(bearer, self.ports.clock.now())?;
        if self.ports.revocations.is_revoked(claims.session_id) {
            return Err(TokenRejection::Revoked);
        }
        Ok(Principal {
            user_id: claims.user_id,
            session_id: claims.session_id,
            expires_at: claims.expires_at,
            amr: AuthMethods::of(&claims.amr),
            auth_time: claims.auth_time,
        })
    }

    /// Records that a bearer token was refused, with the internal reason.
    pub fn token_rejected(&self, rejection: TokenRejection, ctx: &RequestContext) {
        self.ports.audit.record(
            AuthEvent::new(
                AuthEventKind::AccessTokenRejected,
                Outcome::Failure,
                self.ports.clock.now(),
                ctx,
            )
            .detail(rejection.as_str()),
        );
    }
}
