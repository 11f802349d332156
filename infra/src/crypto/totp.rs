//! `SecondFactorCrypto`: TOTP with totp-rs (RFC 6238: SHA-1, 6 digits,
//! 30 s, one step of skew), the provisioning QR code with `qrcode` (SVG),
//! seeds sealed with the data key (bound to their user), and recovery codes
//! (80 random bits each) digested with the data key's HMAC key.

use portcullis_domain::email::Email;
use portcullis_domain::error::Failure;
use portcullis_domain::ids::UserId;
use portcullis_domain::mfa::{
    RECOVERY_CODES, RecoveryCode, SealedSeed, SecondFactorCrypto, TotpCode, TotpProvisioning,
};
use qrcode::QrCode;
use qrcode::render::svg;
use secrecy::SecretString;
use time::OffsetDateTime;
use totp_rs::{Algorithm, Builder, Totp};
use zeroize::Zeroizing;

use super::data_key::DataKey;
use super::secrets::fill_random;

/// Seed bytes (160 bits, RFC 4226's recommendation).
const SEED_LEN: usize = 20;
/// The base32 alphabet of recovery codes (RFC 4648, lowercase).
const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// TOTP and recovery codes under the data key.
#[derive(Clone, Debug)]
pub struct TotpFactors {
    key: DataKey,
    issuer: String,
}

impl TotpFactors {
    /// Factors sealed with `key`; apps show them under `issuer`.
    pub fn new(key: DataKey, issuer: &str) -> Self {
        Self {
            key,
            issuer: issuer.to_owned(),
        }
    }

    fn totp(&self, seed: &[u8], account: &str) -> Result<Totp, Failure> {
        Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(6)
            .with_skew(1)
            .with_step_duration(30)
            .with_secret(seed)
            .with_issuer(Some(self.issuer.as_str()))
            .with_account_name(account)
            .build()
            .map_err(|error| Failure::msg(format!("TOTP parameters: {error}")))
    }
}

/// What a seed is sealed to: the user it belongs to, so a seed copied to
/// another user's row does not open.
fn context(user: UserId) -> Vec<u8> {
    let mut context = b"totp seed v1 ".to_vec();
    context.extend_from_slice(user.as_uuid().as_bytes());
    context
}

impl SecondFactorCrypto for TotpFactors {
    fn new_totp(
        &self,
        user: UserId,
        account: &Email,
    ) -> Result<(SealedSeed, TotpProvisioning), Failure> {
        let mut seed = Zeroizing::new([0u8; SEED_LEN]);
        fill_random(seed.as_mut());
        let totp = self.totp(seed.as_ref(), account.as_str())?;
        let uri = totp
            .to_url()
            .map_err(|error| Failure::msg(format!("otpauth URI: {error}")))?;
        let svg_image = QrCode::new(uri.as_bytes())
            .map_err(|error| Failure::msg(format!("QR code: {error}")))?
            .render::<svg::Color<'_>>()
            .min_dimensions(200, 200)
            .build();
        let sealed = self
            .key
            .seal(seed.as_ref(), &context(user))
            .map_err(|error| Failure::msg(format!("{error:#}")))?;
        Ok((
            SealedSeed(sealed),
            TotpProvisioning {
                secret: SecretString::from(totp.secret().to_base32()),
                otpauth_uri: SecretString::from(uri),
                qr_svg: SecretString::from(svg_image),
            },
        ))
    }

    fn totp_step(
        &self,
        user: UserId,
        seed: &SealedSeed,
        code: &TotpCode,
        now: OffsetDateTime,
    ) -> Result<Option<u64>, Failure> {
        let seed = self
            .key
            .open(&seed.0, &context(user))
            .map_err(|error| Failure::msg(format!("TOTP seed: {error:#}")))?;
        let totp = self.totp(&seed, "account")?;
        let Ok(time) = u64::try_from(now.unix_timestamp()) else {
            return Ok(None);
        };
        Ok(totp.check(code.as_str(), time))
    }

    fn recovery_codes(&self) -> Vec<RecoveryCode> {
        (0..RECOVERY_CODES)
            .map(|_| {
                // 16 characters of 5 bits: 80 random bits.
                let mut bytes = Zeroizing::new([0u8; RecoveryCode::LEN]);
                fill_random(bytes.as_mut());
                let plain: Zeroizing<String> = Zeroizing::new(
                    bytes
                        .iter()
                        .map(|b| char::from(BASE32[usize::from(b & 31)]))
                        .collect(),
                );
                RecoveryCode::from_plain(&plain)
            })
            .collect()
    }

    fn recovery_digest(&self, code: &RecoveryCode) -> Vec<u8> {
        self.key.digest(code.expose().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn factors() -> TotpFactors {
        TotpFactors::new(DataKey::from_bytes(&[9u8; 32]).unwrap(), "Portcullis")
    }

    /// RFC 6238 appendix B, SHA-1: the 20-byte seed "12345678901234567890";
    /// the vectors' 8-digit codes end in these 6 digits.
    #[test]
    fn rfc_6238_vectors_match_at_their_times_and_nowhere_far() {
        let factors = factors();
        let user = UserId::new();
        let sealed = SealedSeed(
            factors
                .key
                .seal(b"12345678901234567890", &context(user))
                .unwrap(),
        );
        for (time, code) in [
            (59_i64, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
        ] {
            let at = OffsetDateTime::from_unix_timestamp(time).unwrap();
            let step = u64::try_from(time).unwrap() / 30;
            let code = TotpCode::parse(code).unwrap();
            assert_eq!(
                factors.totp_step(user, &sealed, &code, at).unwrap(),
                Some(step),
                "at {time}"
            );
            let later = at + time::Duration::seconds(95);
            assert_eq!(
                factors.totp_step(user, &sealed, &code, later).unwrap(),
                None,
                "{time} + 95 s"
            );
        }
        // One step either side is accepted, and says which step matched.
        let at = OffsetDateTime::from_unix_timestamp(1_111_111_109 + 30).unwrap();
        let code = TotpCode::parse("081804").unwrap();
        assert_eq!(
            factors.totp_step(user, &sealed, &code, at).unwrap(),
            Some(1_111_111_109 / 30)
        );
    }

    #[test]
    fn a_seed_opens_only_for_its_user_and_provisioning_names_the_account() {
        let factors = factors();
        let user = UserId::new();
        let (sealed, shown) = factors
            .new_totp(user, &Email::parse("ann@example.com").unwrap())
            .unwrap();
        use secrecy::ExposeSecret as _;
        assert!(
            shown
                .otpauth_uri
                .expose_secret()
                .starts_with("otpauth://totp/Portcullis:ann%40example.com?")
        );
        assert!(shown.qr_svg.expose_secret().contains("<svg"));
        assert_eq!(shown.secret.expose_secret().len(), 32, "160 bits in base32");
        let code = TotpCode::parse("123456").unwrap();
        let now = datetime!(2026-12-05 12:00 UTC);
        assert!(factors.totp_step(user, &sealed, &code, now).is_ok());
        assert!(
            factors
                .totp_step(UserId::new(), &sealed, &code, now)
                .is_err()
        );
    }

    #[test]
    fn recovery_codes_are_distinct_well_formed_and_keyed() {
        let factors = factors();
        let codes = factors.recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let mut shown: Vec<&str> = codes.iter().map(|c| c.expose()).collect();
        for code in &shown {
            assert_eq!(RecoveryCode::parse(code).unwrap().expose(), *code);
        }
        shown.sort_unstable();
        shown.dedup();
        assert_eq!(shown.len(), RECOVERY_CODES);
        let other = TotpFactors::new(DataKey::from_bytes(&[10u8; 32]).unwrap(), "Portcullis");
        assert_ne!(
            factors.recovery_digest(&codes[0]),
            other.recovery_digest(&codes[0])
        );
    }
}
