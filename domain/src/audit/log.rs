//! The audit log use cases: a user's own events, and the operator's search
//! across all users (the `portcullis events` CLI). Both page the same way
//! and each audience has its own page cap, kept here and nowhere else.

use std::sync::Arc;

use uuid::Uuid;

use super::{AuthEvent, AuthEventKind, AuthEventRepository, EventQuery};
use crate::context::Principal;
use crate::error::Failure;
use crate::paging::{Page, clamp_limit, fetch_limit};

/// A page of the audit trail, newest first; the cursor is an event id.
pub type EventPage = Page<AuthEvent, Uuid>;

/// Reads the audit trail.
#[derive(Clone)]
pub struct AuditLog {
    events: Arc<dyn AuthEventRepository>,
}

impl AuditLog {
    /// Largest page a user gets of their own events.
    pub const MAX_PAGE: u64 = 100;
    /// Largest page of an operator's search.
    pub const MAX_SEARCH_PAGE: u64 = 10_000;

    /// Builds the log over its repository.
    pub fn new(events: Arc<dyn AuthEventRepository>) -> Self {
        Self { events }
    }

    /// The caller's own events of `kinds` (all when empty), older than
    /// `before`, newest first; `limit` is clamped to 1..=[`Self::MAX_PAGE`].
    ///
    /// # Errors
    /// A `Failure` only.
    pub async fn mine(
        &self,
        caller: &Principal,
        kinds: Vec<AuthEventKind>,
        before: Option<Uuid>,
        limit: u64,
    ) -> Result<EventPage, Failure> {
        let query = EventQuery {
            user_id: Some(caller.user_id),
            kinds,
            before,
            limit,
            ..EventQuery::default()
        };
        self.page(query, Self::MAX_PAGE).await
    }

    /// Events of every user matching `query`, newest first (operators);
    /// `query.limit` is clamped to 1..=[`Self::MAX_SEARCH_PAGE`].
    ///
    /// # Errors
    /// A `Failure` only.
    pub async fn search(&self, query: EventQuery) -> Result<EventPage, Failure> {
        self.page(query, Self::MAX_SEARCH_PAGE).await
    }

    async fn page(&self, mut query: EventQuery, max: u64) -> Result<EventPage, Failure> {
        let limit = clamp_limit(query.limit, max);
        query.limit = fetch_limit(limit);
        let fetched = self.events.query(&query).await?;
        Ok(Page::from_fetched(fetched, limit, |event| event.id))
    }
}
