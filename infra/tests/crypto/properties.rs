//! Property tests: no arbitrary or hostile input verifies, and none panics.
//!
//! Proptest keeps the seeds of past failures, replayed before any new case,
//! in `infra/tests/proptest-regressions/properties.txt`: its default place
//! for a source file in a directory with a `main.rs`.

use std::sync::LazyLock;

use aws_lc_rs::signature::Ed25519KeyPair;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portcullis_domain::token::{TokenIssuer as _, TokenVerifier as _};
use portcullis_infra::crypto::{JwtConfig, JwtTokens, SigningKeys};
use proptest::prelude::*;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{
    TempDir, access_claims, b64, key_pair_from_pem, now, pem_files, sign_ed25519,
};

/// One EdDSA setup for every case, with its private key in memory; its
/// key directory is gone already.
struct PropertyFixture {
    tokens: JwtTokens,
    pair: Ed25519KeyPair,
    kid: String,
    valid: String,
}

static PROPERTY: LazyLock<PropertyFixture> = LazyLock::new(|| {
    let root = TempDir::new();
    let keys = SigningKeys::load_or_create_ed25519(&root.keys()).unwrap();
    let pair = key_pair_from_pem(&pem_files(&root.keys())[0]);
    let kid = keys.active_kid().to_owned();
    let tokens = JwtTokens::new(keys, JwtConfig::default());
    let valid = tokens
        .issue(&access_claims(now()))
        .unwrap()
        .expose()
        .to_owned();
    PropertyFixture {
        tokens,
        pair,
        kid,
        valid,
    }
});

fn any_json_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "\\PC{0,40}".prop_map(Value::from),
        Just(Value::from(Uuid::new_v4().to_string())),
        Just(json!(["portcullis-api"])),
        Just(json!({})),
    ]
}

/// 512 cases per property in CI; `PROPTEST_CASES=100000` for a long run.
fn fuzz_cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(512)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(fuzz_cases()))]

    #[test]
    fn arbitrary_text_never_verifies(text in "\\PC{0,600}") {
        prop_assert!(PROPERTY.tokens.verify(&text, now()).is_err());
    }

    #[test]
    fn arbitrary_dotted_base64url_never_verifies(
        header in "[A-Za-z0-9_-]{0,200}",
        payload in "[A-Za-z0-9_-]{0,400}",
        signature in "[A-Za-z0-9_-]{0,120}",
        dots in "[.]{0,3}",
    ) {
        let token = format!("{header}.{payload}.{signature}{dots}");
        prop_assert!(PROPERTY.tokens.verify(&token, now()).is_err());
    }

    #[test]
    fn a_real_header_with_arbitrary_rest_never_verifies(
        payload in proptest::collection::vec(any::<u8>(), 0..300),
        signature in proptest::collection::vec(any::<u8>(), 0..80),
    ) {
        let header = PROPERTY.valid.split('.').next().unwrap();
        let token = format!("{header}.{}.{}", b64(&payload), b64(&signature));
        prop_assert!(PROPERTY.tokens.verify(&token, now()).is_err());
    }

    #[test]
    fn any_one_changed_character_breaks_a_valid_token(
        position in any::<prop::sample::Index>(),
        replacement in "[A-Za-z0-9_.=+/ -]",
    ) {
        let valid = &PROPERTY.valid;
        let index = position.index(valid.len());
        prop_assume!(valid[index..=index] != replacement);
        let token = format!("{}{replacement}{}", &valid[..index], &valid[index + 1..]);
        prop_assert!(PROPERTY.tokens.verify(&token, now()).is_err());
    }

    #[test]
    fn correctly_signed_arbitrary_text_never_verifies(claims in "\\PC{0,300}") {
        let header = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": PROPERTY.kid}).to_string();
        let token = sign_ed25519(&PROPERTY.pair, &header, &claims);
        prop_assert!(PROPERTY.tokens.verify(&token, now()).is_err());
    }

    #[test]
    fn correctly_signed_odd_claim_values_never_panic(
        claim in prop::sample::select(vec!["iss", "aud", "sub", "sid", "jti", "iat", "nbf", "exp", "extra"]),
        value in any_json_value(),
    ) {
        let t = now().unix_timestamp();
        let mut claims = json!({
            "iss": "portcullis", "aud": "portcullis-api",
            "sub": Uuid::new_v4(), "sid": Uuid::new_v4(), "jti": Uuid::new_v4(),
            "iat": t, "nbf": t, "exp": t + 900,
        });
        claims[claim] = value;
        let header = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": PROPERTY.kid}).to_string();
        let token = sign_ed25519(&PROPERTY.pair, &header, &claims.to_string());
        // Some values are fine (an extra claim, a far-off exp); the point is
        // that none of them panics, and that a verified token says what we signed.
        if let Ok(verified) = PROPERTY.tokens.verify(&token, now()) {
            prop_assert_eq!(verified.user_id.as_uuid().to_string(), claims["sub"].as_str().unwrap());
        }
    }

    #[test]
    fn correctly_signed_odd_headers_never_verify(
        member in prop::sample::select(vec!["alg", "typ", "kid", "jwk", "jku", "x5u", "x5c", "crit", "b64", "zip"]),
        value in any_json_value(),
    ) {
        let mut header = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": PROPERTY.kid});
        let original = header.get(member).cloned();
        prop_assume!(original.as_ref() != Some(&value));
        header[member] = value.clone();
        let token = sign_ed25519(&PROPERTY.pair, &header.to_string(), &PROPERTY.valid_claims());
        let outcome = PROPERTY.tokens.verify(&token, now());
        // Only another spelling of `typ` may pass.
        let typ_variant = member == "typ"
            && value.as_str().is_some_and(|t| t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt"));
        prop_assert_eq!(outcome.is_ok(), typ_variant);
    }
}

impl PropertyFixture {
    fn valid_claims(&self) -> String {
        let part = self.valid.split('.').nth(1).unwrap();
        String::from_utf8(URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }
}
