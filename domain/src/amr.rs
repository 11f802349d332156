//! Authentication methods (RFC 8176 `amr` values): what a session's user
//! proved when it was opened. Access tokens carry them, so relying parties
//! (and gateways, through `X-Auth-Methods`) can ask for a second factor.
//!
//! A leaf module: it imports no sibling.

/// One method, by its RFC 8176 name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AuthMethod {
    /// A password.
    Pwd,
    /// A one-time password (TOTP, or a recovery code).
    Otp,
    /// A hardware-backed key (a passkey).
    Hwk,
    /// More than one factor.
    Mfa,
}

impl AuthMethod {
    /// The RFC 8176 name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pwd => "pwd",
            Self::Otp => "otp",
            Self::Hwk => "hwk",
            Self::Mfa => "mfa",
        }
    }

    /// Parses a name.
    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Pwd, Self::Otp, Self::Hwk, Self::Mfa]
            .into_iter()
            .find(|method| method.as_str() == raw)
    }

    /// `methods` as stored: names separated by spaces.
    pub fn join(methods: &[Self]) -> String {
        methods
            .iter()
            .map(|m| m.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Stored names back to methods; unknown names are dropped.
    pub fn split(stored: &str) -> Vec<Self> {
        stored.split_whitespace().filter_map(Self::parse).collect()
    }
}

/// A set of methods that is `Copy`: what an authenticated request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AuthMethods(u8);

impl AuthMethods {
    const ORDER: [AuthMethod; 4] = [
        AuthMethod::Pwd,
        AuthMethod::Otp,
        AuthMethod::Hwk,
        AuthMethod::Mfa,
    ];

    /// The set of `methods`.
    pub fn of(methods: &[AuthMethod]) -> Self {
        Self(methods.iter().fold(0, |bits, m| bits | Self::bit(*m)))
    }

    fn bit(method: AuthMethod) -> u8 {
        match method {
            AuthMethod::Pwd => 1,
            AuthMethod::Otp => 2,
            AuthMethod::Hwk => 4,
            AuthMethod::Mfa => 8,
        }
    }

    /// Whether `method` is in the set.
    pub fn contains(self, method: AuthMethod) -> bool {
        self.0 & Self::bit(method) != 0
    }

    /// The methods, in RFC 8176 order of this type.
    pub fn to_vec(self) -> Vec<AuthMethod> {
        Self::ORDER
            .into_iter()
            .filter(|m| self.contains(*m))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_round_trip_as_stored() {
        let methods = [AuthMethod::Pwd, AuthMethod::Otp, AuthMethod::Mfa];
        assert_eq!(AuthMethod::join(&methods), "pwd otp mfa");
        assert_eq!(AuthMethod::split("pwd otp mfa"), methods);
        assert_eq!(AuthMethod::split("pwd bogus"), [AuthMethod::Pwd]);
        let set = AuthMethods::of(&methods);
        assert_eq!(set.to_vec(), methods);
        assert!(!set.contains(AuthMethod::Hwk));
    }
}
