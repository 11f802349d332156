//! The revocation feed's vocabulary: a position assigned by storage and a
//! page of revocations read after one.
//!
//! Instances learn of each other's revocations by reading the feed after the
//! last position they read. Positions come from the database in commit order,
//! never from a clock, so an instance whose clock is wrong, a paused machine
//! or a slow commit cannot hide a revocation.

use super::Revocation;

/// A position in the revocation feed: every revocation up to it was read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RevocationCursor(u64);

impl RevocationCursor {
    /// Before the first revocation.
    pub const START: Self = Self(0);

    /// The position storage assigned.
    pub fn from_raw(position: u64) -> Self {
        Self(position)
    }

    /// The stored position.
    pub fn raw(self) -> u64 {
        self.0
    }
}

/// Revocations read from the feed, oldest first, and where to read next.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevocationPage {
    pub revocations: Vec<Revocation>,
    /// The position of the last revocation read, or the cursor given when
    /// there was none: never behind it.
    pub next: RevocationCursor,
}
