//! Who is asking: the client as far as the edge can tell, the request's ids,
//! and the authenticated caller. Also the encoding of attacker-controlled text.
//!
//! Shared vocabulary: imports only the leaves `ids` and `amr`.

use time::OffsetDateTime;

use crate::amr::AuthMethods;
use crate::ids::{SessionId, UserId};

/// Makes attacker-controlled text safe to store and print: control
/// characters are escaped (`\n`, `\u{1b}`), never silently dropped, and the
/// result holds at most `max_chars` characters (an escape is never cut).
pub fn encode_untrusted(raw: &str, max_chars: usize) -> String {
    let mut out = String::new();
    let mut count = 0;
    for c in raw.chars() {
        let piece: String = if c.is_control() {
            c.escape_default().collect()
        } else {
            c.to_string()
        };
        let len = piece.chars().count();
        if count + len > max_chars {
            break;
        }
        count += len;
        out.push_str(&piece);
    }
    out
}

/// Who opened a session, as far as the edge can tell. Every field is
/// attacker-controlled and bounded at construction.
///
/// `ip` is the address, kept in sessions and audit events; `limit_key` is
/// what per-client budgets and lockouts count against (the edge groups an
/// IPv6 client by its network, since one host holds a whole /64).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    user_agent: Option<String>,
    ip: Option<String>,
    limit_key: Option<String>,
}

impl ClientInfo {
    /// Longest user agent kept, in characters.
    pub const MAX_USER_AGENT: usize = 256;

    /// Builds client info, bounding the user agent and escaping its control characters.
    pub fn new(user_agent: Option<&str>, ip: Option<String>) -> Self {
        let user_agent = user_agent
            .map(|ua| encode_untrusted(ua, Self::MAX_USER_AGENT))
            .filter(|ua| !ua.is_empty());
        Self {
            user_agent,
            ip,
            limit_key: None,
        }
    }
    /// The same client, counted by limits as `key` (for example the /64
    /// network of an IPv6 address) instead of its address.
    #[must_use]
    pub fn with_limit_key(mut self, key: Option<String>) -> Self {
        self.limit_key = key;
        self
    }
    /// The bounded user agent.
    pub fn user_agent(&self) -> Option<&str> {
        self.user_agent.as_deref()
    }
    /// The client IP address.
    pub fn ip(&self) -> Option<&str> {
        self.ip.as_deref()
    }
    /// What per-client budgets and lockouts count against: the limit key
    /// when the edge set one, otherwise the address.
    pub fn limit_key(&self) -> Option<&str> {
        self.limit_key.as_deref().or(self.ip.as_deref())
    }
}

/// Where a request came from and how to find it again in logs and traces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestContext {
    pub client: ClientInfo,
    /// The `X-Request-Id` of the request.
    pub request_id: Option<String>,
    /// The W3C trace id of the request's trace.
    pub trace_id: Option<String>,
}

/// The authenticated caller, from a verified access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    pub user_id: UserId,
    pub session_id: SessionId,
    pub expires_at: OffsetDateTime,
    /// What the session's user proved (the token's `amr`).
    pub amr: AuthMethods,
    /// When they last proved it (the token's `auth_time`).
    pub auth_time: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untrusted_text_is_escaped_not_dropped() {
        assert_eq!(
            encode_untrusted("203.0.113.9\r\n999", 100),
            "203.0.113.9\\r\\n999"
        );
        assert_eq!(encode_untrusted("ab\u{1b}[31m", 100), "ab\\u{1b}[31m");
        assert_eq!(
            encode_untrusted("abc\n", 4),
            "abc",
            "an escape is never cut"
        );
        assert_eq!(encode_untrusted("héllo", 3), "hél");
    }

    #[test]
    fn client_info_is_bounded_and_clean() {
        let ua = format!("evil\r\nheader: x{}", "a".repeat(1000));
        let info = ClientInfo::new(Some(&ua), None);
        let kept = info.user_agent().unwrap();
        assert_eq!(kept.chars().count(), ClientInfo::MAX_USER_AGENT);
        assert!(!kept.contains('\n'));
    }
}
