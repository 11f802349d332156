//! Cursor paging: a page of items, newest first, and the cursor of the next.
//!
//! A leaf module: it imports no sibling. Storage is asked for one item more
//! than the page holds; that extra item only says that a next page exists.

/// A page of items and the cursor to pass as `before` for the next page
/// (`None` on the last page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T, C> {
    pub items: Vec<T>,
    pub next_cursor: Option<C>,
}

/// The page size actually served: `requested` clamped to `1..=max`.
pub fn clamp_limit(requested: u64, max: u64) -> u64 {
    requested.clamp(1, max.max(1))
}

/// How many items to ask storage for to serve a page of `limit`.
pub fn fetch_limit(limit: u64) -> u64 {
    limit.saturating_add(1)
}

impl<T, C> Page<T, C> {
    /// Builds a page of `limit` from `fetched`, which storage returned for
    /// [`fetch_limit`]`(limit)`: when the extra item is there, it is dropped and
    /// the last kept item's cursor points to the next page.
    pub fn from_fetched(mut fetched: Vec<T>, limit: u64, cursor: impl Fn(&T) -> C) -> Self {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let next_cursor = if fetched.len() > limit {
            fetched.truncate(limit);
            fetched.last().map(cursor)
        } else {
            None
        };
        Self {
            items: fetched,
            next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_extra_item_only_announces_a_next_page() {
        let page = Page::from_fetched(vec![5, 4, 3], 2, |n| *n);
        assert_eq!(page.items, vec![5, 4]);
        assert_eq!(page.next_cursor, Some(4));
        let last = Page::from_fetched(vec![2, 1], 2, |n| *n);
        assert_eq!(last.items, vec![2, 1]);
        assert_eq!(last.next_cursor, None);
        assert_eq!(fetch_limit(u64::MAX), u64::MAX);
        assert_eq!(clamp_limit(0, 100), 1);
        assert_eq!(clamp_limit(1000, 100), 100);
    }
}
