//! Identifiers of the domain's entities: time-ordered UUIDs in newtypes, so a
//! session id can never be passed where a user id is expected.
//!
//! A leaf module: it imports no sibling.

use std::fmt;

use uuid::Uuid;

/// Defines an id newtype over a time-ordered UUID.
macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// A new, time-ordered identifier.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
            /// Wraps an identifier read back from storage, a request or a verified token.
            pub fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }
            /// The underlying UUID.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0)
            }
        }
    };
}

id_type!(
    /// A user's stable identifier (the `sub` claim).
    UserId
);
id_type!(
    /// A session's stable identifier (the `sid` claim).
    SessionId
);
id_type!(
    /// A task's identifier (time-ordered, so it doubles as a pagination cursor).
    TaskId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_time_ordered_and_print_their_kind() {
        let first = SessionId::new();
        let second = SessionId::new();
        assert!(first < second);
        assert_eq!(format!("{first:?}"), format!("SessionId({first})"));
        let id = UserId::from_uuid(Uuid::nil());
        assert_eq!(id.as_uuid(), Uuid::nil());
        assert_eq!(format!("{id:?}"), format!("UserId({})", Uuid::nil()));
    }
}
