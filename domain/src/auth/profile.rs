//! The caller's profile.

use super::AuthService;
use crate::context::Principal;
use crate::error::Failure;
use crate::user::Profile;

impl AuthService {
    /// The caller's profile.
    ///
    /// # Errors
    /// `None` when the user no longer exists; a `Failure` on storage errors.
    pub async fn me(&self, caller: &Principal) -> Result<Option<Profile>, Failure> {
        self.ports.users.find_profile(caller.user_id).await
    }
}
