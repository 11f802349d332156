//! Access tokens as JWTs (RFC 9068 profile): signing, and verification
//! hardened beyond `jsonwebtoken`'s defaults (RFC 8725).
//!
//! Verification refuses, before any cryptography, anything that is not a
//! short compact JWS of exactly our shape: one pinned algorithm, `typ`
//! `at+jwt`, a `kid` naming one of our keys, and no header member that could
//! choose a key (`jwk`, `jku`, `x5u`, `x5c`) or demand extensions (`crit`).
//! The key is only ever looked up locally; nothing here makes a request.
//!
//! A token that passed every check is remembered (by the SHA-256 of the whole
//! token, in a bounded cache) so that the same token presented again skips
//! the signature and the parsing; its times are still checked against `now`
//! on every presentation, and revocation is the caller's check on every
//! request (`AuthService::authenticate`).

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Header, Validation};
use portcullis_domain::amr::AuthMethod;
use portcullis_domain::error::Failure;
use portcullis_domain::ids::SessionId;
use portcullis_domain::ids::UserId;
use portcullis_domain::token::{
    AccessClaims, AccessToken, TokenIssuer, TokenRejection, TokenVerifier,
};
use quick_cache::sync::Cache;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use super::keys::SigningKeys;

const TYP: &str = "at+jwt";
/// RFC 9068 §2.1 allows the media type's full name as well.
const TYP_LONG: &str = "application/at+jwt";

/// Issuer, audience and clock tolerance of access tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtConfig {
    pub issuer: String,
    pub audience: String,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`; capped at
    /// [`JwtConfig::MAX_LEEWAY_SECS`].
    pub leeway_secs: u64,
}

impl JwtConfig {
    /// The largest leeway honoured (SECURITY.md).
    pub const MAX_LEEWAY_SECS: u64 = 30;
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            issuer: "portcullis".to_owned(),
            audience: "portcullis-api".to_owned(),
            leeway_secs: 5,
        }
    }
}

/// Signs and verifies access tokens with [`SigningKeys`]. Clones share one
/// cache of verified tokens.
#[derive(Clone)]
pub struct JwtTokens {
    keys: SigningKeys,
    issuer: String,
    audience: String,
    leeway_secs: i64,
    validation: Validation,
    verified: Arc<Cache<TokenDigest, AccessClaims>>,
}

/// SHA-256 of a whole compact token: header, claims and signature.
type TokenDigest = [u8; 32];

impl JwtTokens {
    /// Longest token considered at all; ours are well under 1 KiB.
    pub const MAX_TOKEN_LEN: usize = 4096;

    /// Verified tokens remembered at most (about 150 bytes each). A token
    /// pushed out is simply verified in full again.
    pub const VERIFIED_CACHE_CAPACITY: usize = 10_000;

    /// Builds the signer/verifier. A leeway above 30 s is lowered to 30 s.
    pub fn new(keys: SigningKeys, config: JwtConfig) -> Self {
        let leeway = if config.leeway_secs > JwtConfig::MAX_LEEWAY_SECS {
            tracing::warn!(
                requested = config.leeway_secs,
                used = JwtConfig::MAX_LEEWAY_SECS,
                "JWT leeway lowered to the maximum"
            );
            JwtConfig::MAX_LEEWAY_SECS
        } else {
            config.leeway_secs
        };

        let mut validation = Validation::new(keys.algorithm());
        // `iat` is not checked by the crate whatever this says; see
        // `check_times`.
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.set_issuer(&[config.issuer.as_str()]);
        validation.set_audience(&[config.audience.as_str()]);
        validation.leeway = leeway;

        Self {
            keys,
            issuer: config.issuer,
            audience: config.audience,
            leeway_secs: i64::try_from(leeway).unwrap_or(0),
            validation,
            verified: Arc::new(Cache::new(Self::VERIFIED_CACHE_CAPACITY)),
        }
    }

    fn check_header(&self, encoded: &str) -> Result<&jsonwebtoken::DecodingKey, TokenRejection> {
        let json = URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| TokenRejection::Malformed)?;
        let header: JoseHeader =
            serde_json::from_slice(&json).map_err(|_| TokenRejection::BadHeader)?;
        if header.alg != self.keys.algorithm_name() {
            return Err(TokenRejection::BadHeader);
        }
        let typ_ok = header
            .typ
            .as_deref()
            .is_some_and(|typ| typ.eq_ignore_ascii_case(TYP) || typ.eq_ignore_ascii_case(TYP_LONG));
        if !typ_ok {
            return Err(TokenRejection::BadHeader);
        }
        let kid = header.kid.ok_or(TokenRejection::BadHeader)?;
        self.keys
            .verifying_key(&kid)
            .ok_or(TokenRejection::UnknownKey)
    }

    /// Checks the times against the caller's `now`: the crate only knows the
    /// system clock, and does not look at `iat` at all.
    fn check_claims(
        &self,
        claims: IncomingClaims,
        now: OffsetDateTime,
    ) -> Result<AccessClaims, TokenRejection> {
        if claims.iss != self.issuer || claims.aud != self.audience {
            return Err(TokenRejection::BadClaims);
        }
        let now = now.unix_timestamp();
        let exp = seconds(claims.exp)?;
        let nbf = seconds(claims.nbf)?;
        let iat = seconds(claims.iat)?;
        if nbf > exp || iat > exp {
            return Err(TokenRejection::BadClaims);
        }
        self.check_times(exp, nbf, iat, now)?;

        let amr = claims.amr.as_deref().map_or_else(
            || vec![AuthMethod::Pwd],
            |names| names.iter().filter_map(|n| AuthMethod::parse(n)).collect(),
        );
        let auth_time = match claims.auth_time {
            Some(at) => timestamp(seconds(at)?)?,
            None => timestamp(iat)?,
        };
        Ok(AccessClaims {
            email_verified: claims.email_verified,
            amr,
            auth_time,
            user_id: UserId::from_uuid(uuid(&claims.sub)?),
            session_id: SessionId::from_uuid(uuid(&claims.sid)?),
            token_id: uuid(&claims.jti)?,
            issued_at: timestamp(iat)?,
            not_before: timestamp(nbf)?,
            expires_at: timestamp(exp)?,
        })
    }

    /// Expiry and not-before (`nbf`, `iat`) against `now`, with the leeway.
    fn check_times(&self, exp: i64, nbf: i64, iat: i64, now: i64) -> Result<(), TokenRejection> {
        let leeway = self.leeway_secs;
        if now >= exp.saturating_add(leeway) {
            return Err(TokenRejection::Expired);
        }
        if nbf > now.saturating_add(leeway) || iat > now.saturating_add(leeway) {
            return Err(TokenRejection::NotYetValid);
        }
        Ok(())
    }

    /// Header, signature and claims, checked in full (no cache).
    fn verify_fully(
        &self,
        token: &str,
        header: &str,
        now: OffsetDateTime,
    ) -> Result<AccessClaims, TokenRejection> {
        let key = self.check_header(header)?;
        let data = jsonwebtoken::decode::<IncomingClaims>(token, key, &self.validation)
            .map_err(|error| rejection(error.kind()))?;
        self.check_claims(data.claims, now)
    }
}

impl fmt::Debug for JwtTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtTokens")
            .field("keys", &self.keys)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway_secs", &self.leeway_secs)
            .finish_non_exhaustive()
    }
}

impl TokenIssuer for JwtTokens {
    fn issue(&self, claims: &AccessClaims) -> Result<AccessToken, Failure> {
        let mut header = Header::new(self.keys.algorithm());
        header.typ = Some(TYP.to_owned());
        header.kid = Some(self.keys.active_kid().to_owned());
        let body = OutgoingClaims {
            iss: &self.issuer,
            aud: &self.audience,
            sub: claims.user_id.as_uuid(),
            sid: claims.session_id.as_uuid(),
            jti: claims.token_id,
            iat: claims.issued_at.unix_timestamp(),
            nbf: claims.not_before.unix_timestamp(),
            exp: claims.expires_at.unix_timestamp(),
            email_verified: claims.email_verified,
            amr: claims.amr.iter().map(|m| m.as_str()).collect(),
            auth_time: claims.auth_time.unix_timestamp(),
        };
        jsonwebtoken::encode(&header, &body, self.keys.signing_key())
            .map(AccessToken::new)
            .map_err(Failure::unexpected)
    }
}

impl TokenVerifier for JwtTokens {
    fn verify(&self, token: &str, now: OffsetDateTime) -> Result<AccessClaims, TokenRejection> {
        let header = compact_header(token)?;
        let digest: TokenDigest = Sha256::digest(token.as_bytes()).into();
        if let Some(claims) = self.verified.get(&digest) {
            // Same bytes, same keys and configuration (both fixed for the
            // life of `self`): only the clock can have changed the answer.
            let times = self.check_times(
                claims.expires_at.unix_timestamp(),
                claims.not_before.unix_timestamp(),
                claims.issued_at.unix_timestamp(),
                now.unix_timestamp(),
            );
            if times == Err(TokenRejection::Expired) {
                self.verified.remove(&digest);
            }
            return times.map(|()| claims);
        }
        let claims = self.verify_fully(token, header, now)?;
        self.verified.insert(digest, claims.clone());
        Ok(claims)
    }
}

/// The header segment of `token` if it has the bare shape of a compact JWS:
/// short, three non-empty segments, base64url characters only (no padding,
/// no whitespace).
fn compact_header(token: &str) -> Result<&str, TokenRejection> {
    if token.len() > JwtTokens::MAX_TOKEN_LEN {
        return Err(TokenRejection::Malformed);
    }
    let alphabet_ok = token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !alphabet_ok {
        return Err(TokenRejection::Malformed);
    }
    let mut segments = token.split('.');
    match (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) {
        (Some(header), Some(payload), Some(signature), None)
            if !header.is_empty() && !payload.is_empty() && !signature.is_empty() =>
        {
            Ok(header)
        }
        _ => Err(TokenRejection::Malformed),
    }
}

/// Exactly the header members we issue. Anything else, `jwk`, `jku`, `x5u`,
/// `x5c` and `crit` included, or any member twice, fails to parse.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JoseHeader {
    alg: String,
    typ: Option<String>,
    kid: Option<String>,
}

#[derive(Serialize)]
struct OutgoingClaims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: Uuid,
    sid: Uuid,
    jti: Uuid,
    iat: i64,
    nbf: i64,
    exp: i64,
    email_verified: bool,
    amr: Vec<&'static str>,
    auth_time: i64,
}

/// Typed so that a missing claim, a claim of the wrong JSON type (`exp` as a
/// string, `aud` as an array) or a claim given twice fails to parse.
#[derive(Deserialize)]
struct IncomingClaims {
    iss: String,
    aud: String,
    sub: String,
    sid: String,
    jti: String,
    iat: u64,
    nbf: u64,
    exp: u64,
    /// Absent from tokens signed before the claim existed: unverified.
    #[serde(default)]
    email_verified: bool,
    /// Absent from tokens signed before the claim existed: a password.
    #[serde(default)]
    amr: Option<Vec<String>>,
    /// Absent from tokens signed before the claim existed: `iat`.
    #[serde(default)]
    auth_time: Option<u64>,
}

fn rejection(kind: &ErrorKind) -> TokenRejection {
    match kind {
        ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Utf8(_) => {
            TokenRejection::Malformed
        }
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::UnsupportedAlgorithm => TokenRejection::BadHeader,
        ErrorKind::InvalidSignature => TokenRejection::BadSignature,
        ErrorKind::ExpiredSignature => TokenRejection::Expired,
        ErrorKind::ImmatureSignature => TokenRejection::NotYetValid,
        // The header was parsed already; a JSON error is about the claims.
        ErrorKind::Json(_)
        | ErrorKind::MissingRequiredClaim(_)
        | ErrorKind::InvalidClaimFormat(_)
        | ErrorKind::InvalidIssuer
        | ErrorKind::InvalidAudience
        | ErrorKind::InvalidSubject => TokenRejection::BadClaims,
        // Key or provider failures are ours, not the token's; the token is
        // refused all the same, and the cause is worth a look.
        other => {
            tracing::warn!(error = ?other, "access token verification failed unexpectedly");
            TokenRejection::BadSignature
        }
    }
}

fn seconds(value: u64) -> Result<i64, TokenRejection> {
    i64::try_from(value).map_err(|_| TokenRejection::BadClaims)
}

fn timestamp(seconds: i64) -> Result<OffsetDateTime, TokenRejection> {
    OffsetDateTime::from_unix_timestamp(seconds).map_err(|_| TokenRejection::BadClaims)
}

fn uuid(text: &str) -> Result<Uuid, TokenRejection> {
    Uuid::try_parse(text).map_err(|_| TokenRejection::BadClaims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hs256_tokens() -> JwtTokens {
        let keys = SigningKeys::hs256(&[7u8; 32]).unwrap();
        JwtTokens::new(keys, JwtConfig::default())
    }

    fn claims_at(at: OffsetDateTime) -> AccessClaims {
        let at = at.replace_nanosecond(0).unwrap();
        AccessClaims {
            email_verified: false,
            amr: vec![AuthMethod::Pwd],
            auth_time: at,
            user_id: UserId::new(),
            session_id: SessionId::new(),
            token_id: Uuid::new_v4(),
            issued_at: at,
            not_before: at,
            expires_at: at + time::Duration::minutes(15),
        }
    }

    #[test]
    fn a_verified_token_is_remembered_and_its_times_checked_on_every_hit() {
        let tokens = hs256_tokens();
        let now = OffsetDateTime::now_utc();
        let claims = claims_at(now);
        let token = tokens.issue(&claims).unwrap();

        assert_eq!(tokens.verify(token.expose(), now), Ok(claims.clone()));
        assert_eq!(tokens.verified.len(), 1);
        // A clone shares the cache.
        assert_eq!(tokens.clone().verify(token.expose(), now), Ok(claims));

        let early = now - time::Duration::hours(1);
        assert_eq!(
            tokens.verify(token.expose(), early),
            Err(TokenRejection::NotYetValid)
        );
        let late = now + time::Duration::hours(1);
        assert_eq!(
            tokens.verify(token.expose(), late),
            Err(TokenRejection::Expired)
        );
        // An expired entry is dropped when seen.
        assert_eq!(tokens.verified.len(), 0);
    }

    #[test]
    fn only_the_exact_verified_bytes_hit_the_cache() {
        let tokens = hs256_tokens();
        let now = OffsetDateTime::now_utc();
        let token = tokens.issue(&claims_at(now)).unwrap();
        assert!(tokens.verify(token.expose(), now).is_ok());

        // Same header and claims, another signature.
        let (signed, signature) = token.expose().rsplit_once('.').unwrap();
        let first = if signature.starts_with('A') { "B" } else { "A" };
        let forged_signature = format!("{first}{}", &signature[1..]);
        let forged = format!("{signed}.{forged_signature}");
        assert_eq!(
            tokens.verify(&forged, now),
            Err(TokenRejection::BadSignature)
        );
        // Refused tokens are never remembered.
        assert_eq!(tokens.verified.len(), 1);
        assert_eq!(tokens.verify("a.b.c", now), Err(TokenRejection::Malformed));
        assert_eq!(tokens.verified.len(), 1);
    }

    #[test]
    fn the_cache_is_bounded() {
        let tokens = hs256_tokens();
        let now = OffsetDateTime::now_utc();
        for _ in 0..JwtTokens::VERIFIED_CACHE_CAPACITY + 500 {
            let token = tokens.issue(&claims_at(now)).unwrap();
            assert!(tokens.verify(token.expose(), now).is_ok());
        }
        assert!(tokens.verified.len() <= JwtTokens::VERIFIED_CACHE_CAPACITY);
    }

    #[test]
    fn shape_checks_come_before_anything_else() {
        assert_eq!(compact_header("a.b.c"), Ok("a"));
        for bad in [
            "", "a.b", "a.b.c.d", "a..c", ".b.c", "a.b.", " a.b.c", "a.b.c\n", "a.b.c=", "a+b.c.d",
        ] {
            assert_eq!(
                compact_header(bad),
                Err(TokenRejection::Malformed),
                "{bad:?}"
            );
        }
        let long = format!("{}.b.c", "a".repeat(JwtTokens::MAX_TOKEN_LEN));
        assert_eq!(compact_header(&long), Err(TokenRejection::Malformed));
    }
}
