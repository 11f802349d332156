//! The email address value type: parsed once at the edge, normalised for
//! uniqueness, and never holding a value that could not be an address.
//!
//! Normalisation is Unicode NFC then lowercase, so `ali\u{301}ce@…` (a
//! decomposed é) and `alice@…` with a precomposed é are one address. Invisible
//! characters that would let two addresses look alike while differing are
//! refused rather than stripped: control characters (Cc), format characters
//! (Cf: zero-width space, joiners, BOM, soft hyphen) and the bidirectional
//! controls (which are format characters too, named on their own because
//! they can make an address read backwards).
//!
//! A leaf module: it imports no sibling.

use std::fmt;

use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// Why a string is not an acceptable email address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("email is empty")]
    Empty,
    #[error("email is longer than {max} characters")]
    TooLong { max: usize },
    #[error("email must contain exactly one '@' with text on both sides")]
    MissingAt,
    #[error("email contains whitespace")]
    Whitespace,
    #[error("email contains a control character (U+{:04X})", u32::from(*.0))]
    ControlCharacter(char),
    #[error(
        "email contains an invisible format character (U+{:04X}, such as a zero-width space)",
        u32::from(*.0)
    )]
    FormatCharacter(char),
    #[error(
        "email contains a bidirectional text control character (U+{:04X})",
        u32::from(*.0)
    )]
    BidiControl(char),
    #[error("the part before '@' is longer than 64 characters")]
    LocalPartTooLong,
    #[error("the domain of the email is not a valid host name")]
    InvalidDomain,
}

/// The bidirectional formatting controls: embeddings and overrides
/// (U+202A–U+202E), isolates (U+2066–U+2069), the implicit marks (U+200E,
/// U+200F) and the Arabic letter mark (U+061C).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// The first character an address must not hold, as its error.
fn refused_character(text: &str) -> Option<EmailError> {
    text.chars().find_map(|c| {
        if is_bidi_control(c) {
            Some(EmailError::BidiControl(c))
        } else if c.is_control() {
            Some(EmailError::ControlCharacter(c))
        } else if c.general_category() == GeneralCategory::Format {
            Some(EmailError::FormatCharacter(c))
        } else if c.is_whitespace() {
            Some(EmailError::Whitespace)
        } else {
            None
        }
    })
}

/// A normalised, length-checked email address.
///
/// Normalisation trims surrounding whitespace, applies Unicode NFC and
/// lowercases the whole address, so uniqueness is case-insensitive and blind
/// to how an accented letter was typed. Only [`Email::parse`] makes one.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// RFC 5321 path limit.
    pub const MAX_LEN: usize = 254;

    /// Parses and normalises a raw address.
    ///
    /// # Errors
    /// An [`EmailError`] naming the first problem found.
    pub fn parse(raw: &str) -> Result<Self, EmailError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(EmailError::Empty);
        }
        if let Some(refused) = refused_character(trimmed) {
            return Err(refused);
        }
        // Lowercasing an NFC string can leave it unnormalised (a capital
        // with a combining mark), so normalise on both sides of it.
        let lowered: String = trimmed
            .nfc()
            .collect::<String>()
            .to_lowercase()
            .nfc()
            .collect();
        let trimmed = lowered.as_str();
        if trimmed.chars().count() > Self::MAX_LEN {
            return Err(EmailError::TooLong { max: Self::MAX_LEN });
        }
        let (local, domain) = trimmed.rsplit_once('@').ok_or(EmailError::MissingAt)?;
        if local.is_empty() || domain.is_empty() || local.contains('@') {
            return Err(EmailError::MissingAt);
        }
        if local.chars().count() > 64 {
            return Err(EmailError::LocalPartTooLong);
        }
        let labels_ok = domain.split('.').count() >= 2
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        if !labels_ok {
            return Err(EmailError::InvalidDomain);
        }
        Ok(Self(lowered))
    }

    /// Rebuilds an email read back from storage, where it was stored normalised.
    pub fn from_trusted(stored: String) -> Self {
        Self(stored)
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before the last '@'.
    pub fn local_part(&self) -> &str {
        self.0
            .rsplit_once('@')
            .map_or(self.0.as_str(), |(local, _)| local)
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({})", self.0)
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn email_is_trimmed_and_lowercased() {
        let email = Email::parse("  Alice.Smith@Example.COM ").unwrap();
        assert_eq!(email.as_str(), "alice.smith@example.com");
        assert_eq!(email.local_part(), "alice.smith");
    }

    #[test]
    fn bad_emails_are_rejected_with_a_reason() {
        assert_eq!(Email::parse("   "), Err(EmailError::Empty));
        assert_eq!(Email::parse("no-at-sign"), Err(EmailError::MissingAt));
        assert_eq!(Email::parse("@example.com"), Err(EmailError::MissingAt));
        assert_eq!(Email::parse("a@b@example.com"), Err(EmailError::MissingAt));
        assert_eq!(Email::parse("a b@example.com"), Err(EmailError::Whitespace));
        assert_eq!(Email::parse("a@localhost"), Err(EmailError::InvalidDomain));
        assert_eq!(Email::parse("a@-x.com"), Err(EmailError::InvalidDomain));
        assert_eq!(Email::parse("a@x..com"), Err(EmailError::InvalidDomain));
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert_eq!(Email::parse(&long_local), Err(EmailError::LocalPartTooLong));
        let long = format!("a@{}.com", "b".repeat(260));
        assert_eq!(Email::parse(&long), Err(EmailError::TooLong { max: 254 }));
    }

    #[test]
    fn composed_and_decomposed_letters_are_one_address() {
        let composed = Email::parse("ali\u{e9}ce@example.com").unwrap();
        let decomposed = Email::parse("alie\u{301}ce@example.com").unwrap();
        assert_eq!(composed, decomposed);
        assert_eq!(composed.as_str(), "ali\u{e9}ce@example.com");
        // Compatibility forms are not folded: NFC, not NFKC.
        assert_ne!(
            Email::parse("\u{fb01}@example.com").unwrap().as_str(),
            "fi@example.com"
        );
        // A capital with a combining mark lowercases to NFC too.
        assert_eq!(
            Email::parse("E\u{301}VE@example.com").unwrap().as_str(),
            "\u{e9}ve@example.com"
        );
    }

    #[test]
    fn invisible_and_direction_characters_are_refused_by_name() {
        for c in [
            '\u{200B}',
            '\u{200C}',
            '\u{200D}',
            '\u{2060}',
            '\u{FEFF}',
            '\u{AD}',
            '\u{E0041}',
        ] {
            assert_eq!(
                Email::parse(&format!("ali{c}ce@example.com")),
                Err(EmailError::FormatCharacter(c)),
                "U+{:04X}",
                u32::from(c)
            );
        }
        for c in [
            '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}',
            '\u{2068}', '\u{2069}', '\u{200E}', '\u{200F}', '\u{061C}',
        ] {
            assert_eq!(
                Email::parse(&format!("{c}evil@example.com")),
                Err(EmailError::BidiControl(c)),
                "U+{:04X}",
                u32::from(c)
            );
        }
        for c in ['\u{0}', '\u{7}', '\u{1b}', '\u{7f}', '\u{85}'] {
            assert_eq!(
                Email::parse(&format!("a{c}b@example.com")),
                Err(EmailError::ControlCharacter(c))
            );
        }
        // A refused character at the edge is not trimmed away either.
        assert_eq!(
            Email::parse("alice@example.com\u{200B}"),
            Err(EmailError::FormatCharacter('\u{200B}'))
        );
        assert_eq!(
            Email::parse("a\u{a0}b@example.com"),
            Err(EmailError::Whitespace)
        );
        let message = EmailError::BidiControl('\u{202E}').to_string();
        assert!(message.contains("U+202E"), "{message}");
    }

    fn is_nfc(text: &str) -> bool {
        unicode_normalization::is_nfc(text)
    }

    /// Text drawn from the troublesome corners: ASCII, combining marks,
    /// precomposed letters, capitals with accents, format and bidi controls.
    fn tricky() -> impl Strategy<Value = String> {
        let pieces = prop::sample::select(vec![
            "a",
            "Z",
            "@",
            ".",
            "-",
            "e\u{301}",
            "\u{e9}",
            "\u{c9}",
            "E\u{301}",
            "\u{130}",
            "\u{1e9e}",
            "\u{3a3}",
            "\u{200b}",
            "\u{202e}",
            "\u{fb01}",
            "\u{301}",
            " ",
            "example.com",
            "\u{0}",
        ]);
        prop::collection::vec(pieces, 0..40).prop_map(|p| p.concat())
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_output_is_normalised(raw in ".{0,300}") {
            if let Ok(email) = Email::parse(&raw) {
                prop_assert_eq!(email.as_str(), email.as_str().to_lowercase());
                prop_assert!(is_nfc(email.as_str()));
                prop_assert!(email.as_str().chars().count() <= Email::MAX_LEN);
                prop_assert_eq!(Email::parse(email.as_str()).ok(), Some(email.clone()));
            }
        }

        #[test]
        fn tricky_input_parses_to_nfc_lowercase_idempotently(raw in tricky()) {
            if let Ok(email) = Email::parse(&raw) {
                prop_assert_eq!(email.as_str(), email.as_str().to_lowercase());
                prop_assert!(is_nfc(email.as_str()));
                prop_assert!(refused_character(email.as_str()).is_none());
                prop_assert_eq!(Email::parse(email.as_str()).ok(), Some(email.clone()));
                let decomposed: String = email.as_str().nfd().collect();
                prop_assert_eq!(Email::parse(&decomposed).ok(), Some(email.clone()));
            }
        }
    }
}
