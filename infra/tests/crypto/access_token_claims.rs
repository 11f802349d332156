//! `JwtTokens`: the claims an access token must carry (expiry, not-before,
//! issued-at, issuer, audience, ids) and the time checks and leeway.

use portcullis_domain::token::{TokenIssuer as _, TokenRejection, TokenVerifier as _};
use portcullis_infra::crypto::{JwtConfig, JwtTokens, SigningKeys};
use serde_json::{Value, json};
use time::Duration;

use crate::support::{Ed25519Fixture, access_claims, now};

#[test]
fn expiry_is_required_numeric_and_enforced() {
    let fx = Ed25519Fixture::new();
    let t = now().unix_timestamp();

    let missing = fx.with_claims(|c| {
        c.remove("exp");
    });
    let past = fx.with_claims(|c| {
        c.insert("iat".into(), json!(t - 1000));
        c.insert("nbf".into(), json!(t - 1000));
        c.insert("exp".into(), json!(t - 60));
    });
    let as_string = fx.with_claims(|c| {
        c.insert("exp".into(), json!((t + 900).to_string()));
    });
    let as_float = fx.with_claims(|c| {
        c.insert("exp".into(), json!(t as f64 + 900.5));
    });
    let negative = fx.with_claims(|c| {
        c.insert("exp".into(), json!(-1));
    });
    let within_leeway = fx.with_claims(|c| {
        c.insert("iat".into(), json!(t - 1000));
        c.insert("nbf".into(), json!(t - 1000));
        c.insert("exp".into(), json!(t - 2));
    });

    assert_eq!(fx.verify(&missing).unwrap_err(), TokenRejection::BadClaims);
    assert_eq!(fx.verify(&past).unwrap_err(), TokenRejection::Expired);
    assert_eq!(
        fx.verify(&as_string).unwrap_err(),
        TokenRejection::BadClaims
    );
    assert_eq!(fx.verify(&as_float).unwrap_err(), TokenRejection::BadClaims);
    assert_eq!(fx.verify(&negative).unwrap_err(), TokenRejection::BadClaims);
    assert!(
        fx.verify(&within_leeway).is_ok(),
        "5 s of leeway by default"
    );
}

#[test]
fn not_before_and_issued_at_in_the_future_are_rejected() {
    let fx = Ed25519Fixture::new();
    let t = now().unix_timestamp();

    let nbf_future = fx.with_claims(|c| {
        c.insert("nbf".into(), json!(t + 120));
    });
    let iat_future = fx.with_claims(|c| {
        c.insert("iat".into(), json!(t + 120));
    });
    let nbf_missing = fx.with_claims(|c| {
        c.remove("nbf");
    });
    let iat_missing = fx.with_claims(|c| {
        c.remove("iat");
    });

    assert_eq!(
        fx.verify(&nbf_future).unwrap_err(),
        TokenRejection::NotYetValid
    );
    assert_eq!(
        fx.verify(&iat_future).unwrap_err(),
        TokenRejection::NotYetValid
    );
    assert_eq!(
        fx.verify(&nbf_missing).unwrap_err(),
        TokenRejection::BadClaims
    );
    assert_eq!(
        fx.verify(&iat_missing).unwrap_err(),
        TokenRejection::BadClaims
    );
}

#[test]
fn issuer_and_audience_must_be_ours() {
    let fx = Ed25519Fixture::new();
    let cases: [(&str, Option<Value>); 7] = [
        ("iss", Some(json!("someone-else"))),
        ("iss", None),
        ("iss", Some(json!(["portcullis"]))),
        ("aud", Some(json!("another-api"))),
        ("aud", None),
        ("aud", Some(json!(["portcullis-api", "another-api"]))),
        ("aud", Some(json!(""))),
    ];
    for (claim, value) in cases {
        let token = fx.with_claims(|c| match &value {
            Some(value) => {
                c.insert(claim.into(), value.clone());
            }
            None => {
                c.remove(claim);
            }
        });
        assert_eq!(
            fx.verify(&token).unwrap_err(),
            TokenRejection::BadClaims,
            "{claim} {value:?}"
        );
    }
}

#[test]
fn subject_session_and_token_ids_must_be_uuids() {
    let fx = Ed25519Fixture::new();
    for claim in ["sub", "sid", "jti"] {
        let missing = fx.with_claims(|c| {
            c.remove(claim);
        });
        let not_uuid = fx.with_claims(|c| {
            c.insert(claim.into(), json!("alice@example.com"));
        });
        let number = fx.with_claims(|c| {
            c.insert(claim.into(), json!(42));
        });
        for token in [missing, not_uuid, number] {
            assert_eq!(
                fx.verify(&token).unwrap_err(),
                TokenRejection::BadClaims,
                "{claim}"
            );
        }
    }
}

#[test]
fn time_checks_use_the_given_now() {
    let fx = Ed25519Fixture::new();
    let token = fx.tokens.issue(&access_claims(now())).unwrap();

    let later = fx.tokens.verify(token.expose(), now() + Duration::hours(1));
    let earlier = fx.tokens.verify(token.expose(), now() - Duration::hours(1));

    assert_eq!(later.unwrap_err(), TokenRejection::Expired);
    assert_eq!(earlier.unwrap_err(), TokenRejection::NotYetValid);
}

#[test]
fn leeway_is_capped_at_thirty_seconds() {
    let fx = Ed25519Fixture::new();
    let keys = SigningKeys::load_or_create_ed25519(&fx.dir).unwrap();
    let lenient = JwtTokens::new(
        keys,
        JwtConfig {
            leeway_secs: 3600,
            ..JwtConfig::default()
        },
    );
    let t = now().unix_timestamp();
    let expired = fx.with_claims(|c| {
        c.insert("iat".into(), json!(t - 1000));
        c.insert("nbf".into(), json!(t - 1000));
        c.insert("exp".into(), json!(t - 60));
    });
    let recently = fx.with_claims(|c| {
        c.insert("iat".into(), json!(t - 1000));
        c.insert("nbf".into(), json!(t - 1000));
        c.insert("exp".into(), json!(t - 20));
    });

    assert_eq!(
        lenient.verify(&expired, now()).unwrap_err(),
        TokenRejection::Expired
    );
    assert!(lenient.verify(&recently, now()).is_ok());
}

#[test]
fn tokens_of_another_issuer_configuration_are_rejected() {
    let fx = Ed25519Fixture::new();
    let keys = SigningKeys::load_or_create_ed25519(&fx.dir).unwrap();
    let other = JwtTokens::new(
        keys,
        JwtConfig {
            issuer: "someone-else".to_owned(),
            ..JwtConfig::default()
        },
    );
    let token = other.issue(&access_claims(now())).unwrap();
    assert_eq!(
        fx.verify(token.expose()).unwrap_err(),
        TokenRejection::BadClaims
    );
}
