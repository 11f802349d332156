//! `JwtTokens`: issuing, and the access-token attacks on the header, the
//! signature and the encoding (SECURITY.md, "Access tokens"), in EdDSA and
//! HS256 mode.

use std::time::{Duration as StdDuration, Instant};

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portcullis_domain::session::SecretGenerator as _;
use portcullis_domain::token::{TokenIssuer as _, TokenRejection, TokenVerifier as _};
use portcullis_infra::crypto::{
    JwtConfig, JwtTokens, RandomSecrets, SigningKeys, generate_hs256_secret,
};
use serde_json::json;
use uuid::Uuid;

use crate::support::{Ed25519Fixture, access_claims, b64, now, segment, sign_ed25519, sign_hs256};

#[test]
fn an_issued_token_verifies_to_the_same_claims() {
    let fx = Ed25519Fixture::new();
    let claims = access_claims(now());

    let token = fx.tokens.issue(&claims).unwrap();
    let verified = fx.verify(token.expose()).unwrap();

    assert_eq!(verified, claims);
    assert_eq!(
        segment(token.expose(), 0),
        json!({"alg": "EdDSA", "typ": "at+jwt", "kid": fx.kid})
    );
    let body = segment(token.expose(), 1);
    assert_eq!(body["iss"], "portcullis");
    assert_eq!(body["aud"], "portcullis-api");
    assert_eq!(body["sub"], claims.user_id.as_uuid().to_string());
    assert_eq!(body["sid"], claims.session_id.as_uuid().to_string());
    assert_eq!(body["jti"], claims.token_id.to_string());
    assert_eq!(body["exp"], claims.expires_at.unix_timestamp());
    assert!(body["iat"].is_i64() && body["nbf"].is_i64());
}

#[test]
fn a_hand_signed_token_of_our_shape_verifies() {
    // Proves the helpers below build tokens that fail only for the reason
    // each test introduces.
    let fx = Ed25519Fixture::new();
    assert!(fx.verify(&fx.with_claims(|_| {})).is_ok());
    for typ in [
        "at+jwt",
        "AT+JWT",
        "application/at+jwt",
        "Application/AT+JWT",
    ] {
        let token = fx.with_header(json!({"alg": "EdDSA", "typ": typ, "kid": fx.kid}));
        assert!(fx.verify(&token).is_ok(), "{typ}");
    }
}

#[test]
fn alg_none_is_rejected_in_any_case() {
    let fx = Ed25519Fixture::new();
    let claims = fx.claims(now()).to_string();
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = json!({"alg": alg, "typ": "at+jwt", "kid": fx.kid}).to_string();
        let unsigned = format!("{}.{}.", b64(&header), b64(&claims));
        let with_junk = format!("{unsigned}AAAA");
        let with_real = fx.sign(&header, &claims);

        assert_eq!(
            fx.verify(&unsigned).unwrap_err(),
            TokenRejection::Malformed,
            "{alg}"
        );
        assert_eq!(
            fx.verify(&with_junk).unwrap_err(),
            TokenRejection::BadHeader,
            "{alg}"
        );
        assert_eq!(
            fx.verify(&with_real).unwrap_err(),
            TokenRejection::BadHeader,
            "{alg}"
        );
    }
}

#[test]
fn hs256_signed_with_our_public_key_is_rejected() {
    let fx = Ed25519Fixture::new();
    let header = json!({"alg": "HS256", "typ": "at+jwt", "kid": fx.kid}).to_string();
    let claims = fx.claims(now()).to_string();
    let public = fx.pair.public_key().as_ref().to_vec();
    let jwks_x = b64(&public);

    for secret in [public.as_slice(), jwks_x.as_bytes()] {
        let token = sign_hs256(secret, &header, &claims);
        assert_eq!(fx.verify(&token).unwrap_err(), TokenRejection::BadHeader);
    }
}

#[test]
fn any_other_algorithm_is_rejected() {
    let fx = Ed25519Fixture::new();
    for alg in [
        "RS256", "ES256", "PS256", "HS512", "eddsa", "EDDSA", "EdDSA ", "Ed25519", "",
    ] {
        let token = fx.with_header(json!({"alg": alg, "typ": "at+jwt", "kid": fx.kid}));
        assert_eq!(
            fx.verify(&token).unwrap_err(),
            TokenRejection::BadHeader,
            "{alg:?}"
        );
    }
    let token = fx.with_header(json!({"alg": ["EdDSA"], "typ": "at+jwt", "kid": fx.kid}));
    assert_eq!(fx.verify(&token).unwrap_err(), TokenRejection::BadHeader);
    let token = fx.with_header(json!({"typ": "at+jwt", "kid": fx.kid}));
    assert_eq!(fx.verify(&token).unwrap_err(), TokenRejection::BadHeader);
}

#[test]
fn header_members_that_choose_a_key_are_rejected() {
    let fx = Ed25519Fixture::new();
    // An attacker's own key, offered in every way JOSE allows.
    let attacker = Ed25519KeyPair::generate().unwrap();
    let attacker_jwk =
        json!({"kty": "OKP", "crv": "Ed25519", "x": b64(attacker.public_key().as_ref())});
    let members = [
        ("jwk", attacker_jwk),
        ("jku", json!("https://attacker.example/jwks.json")),
        ("x5u", json!("https://attacker.example/cert.pem")),
        (
            "x5c",
            json!(["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]),
        ),
        ("crit", json!(["exp"])),
        ("cty", json!("JWT")),
    ];
    for (name, value) in members {
        let mut header = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": fx.kid});
        header[name] = value;
        let claims = fx.claims(now()).to_string();
        // Signed by us (only the header is wrong) and by the attacker.
        let ours = fx.sign(&header.to_string(), &claims);
        let theirs = sign_ed25519(&attacker, &header.to_string(), &claims);
        assert_eq!(
            fx.verify(&ours).unwrap_err(),
            TokenRejection::BadHeader,
            "{name}"
        );
        assert_eq!(
            fx.verify(&theirs).unwrap_err(),
            TokenRejection::BadHeader,
            "{name}"
        );
    }
}

#[test]
fn a_kid_that_is_not_exactly_ours_is_an_unknown_key() {
    let fx = Ed25519Fixture::new();
    let almost = [
        "../../etc/passwd".to_owned(),
        "/dev/null".to_owned(),
        "unknown".to_owned(),
        String::new(),
        format!("{} ", fx.kid),
        fx.kid.to_uppercase(),
        fx.kid[..20].to_owned(),
        format!("{}' OR '1'='1", fx.kid),
    ];
    for kid in almost {
        let token = fx.with_header(json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid}));
        assert_eq!(
            fx.verify(&token).unwrap_err(),
            TokenRejection::UnknownKey,
            "{kid:?}"
        );
    }
    for header in [
        json!({"alg": "EdDSA", "typ": "at+jwt"}),
        json!({"alg": "EdDSA", "typ": "at+jwt", "kid": null}),
        json!({"alg": "EdDSA", "typ": "at+jwt", "kid": 1}),
    ] {
        assert_eq!(
            fx.verify(&fx.with_header(header)).unwrap_err(),
            TokenRejection::BadHeader
        );
    }
}

#[test]
fn a_token_signed_by_another_key_with_our_kid_is_rejected() {
    let fx = Ed25519Fixture::new();
    let other = Ed25519KeyPair::generate().unwrap();
    let token = sign_ed25519(&other, &fx.header(), &fx.claims(now()).to_string());
    assert_eq!(fx.verify(&token).unwrap_err(), TokenRejection::BadSignature);
}

#[test]
fn a_tampered_signature_is_rejected() {
    let fx = Ed25519Fixture::new();
    let token = fx.tokens.issue(&access_claims(now())).unwrap();
    let token = token.expose();
    let (signing_input, signature) = token.rsplit_once('.').unwrap();

    let mut flipped = URL_SAFE_NO_PAD.decode(signature).unwrap();
    flipped[10] ^= 0x01;
    let flipped = format!("{signing_input}.{}", b64(&flipped));
    assert_eq!(
        fx.verify(&flipped).unwrap_err(),
        TokenRejection::BadSignature
    );

    let stripped = format!("{signing_input}.");
    assert_eq!(fx.verify(&stripped).unwrap_err(), TokenRejection::Malformed);

    for keep in [1, 43, 84, 85] {
        let truncated = format!("{signing_input}.{}", &signature[..keep]);
        let rejection = fx.verify(&truncated).unwrap_err();
        assert!(
            matches!(
                rejection,
                TokenRejection::Malformed | TokenRejection::BadSignature
            ),
            "{keep}: {rejection:?}"
        );
    }
    let short_but_decodable = format!(
        "{signing_input}.{}",
        b64(&URL_SAFE_NO_PAD.decode(signature).unwrap()[..63])
    );
    assert_eq!(
        fx.verify(&short_but_decodable).unwrap_err(),
        TokenRejection::BadSignature
    );
}

#[test]
fn changed_claims_under_a_kept_signature_are_rejected() {
    let fx = Ed25519Fixture::new();
    let token = fx.tokens.issue(&access_claims(now())).unwrap();
    let mut parts: Vec<String> = token.expose().split('.').map(str::to_owned).collect();
    let mut claims = segment(token.expose(), 1);
    claims["sub"] = json!(Uuid::new_v4());
    parts[1] = b64(claims.to_string());

    assert_eq!(
        fx.verify(&parts.join(".")).unwrap_err(),
        TokenRejection::BadSignature
    );
}

#[test]
fn extra_dots_whitespace_and_padding_are_malformed() {
    let fx = Ed25519Fixture::new();
    let token = fx.tokens.issue(&access_claims(now())).unwrap();
    let token = token.expose();
    let (header, rest) = token.split_once('.').unwrap();
    let variants = [
        format!("{token}."),
        format!("{token}.e30"),
        format!("{header}..{rest}"),
        format!(".{token}"),
        format!(" {token}"),
        format!("{token} "),
        format!("{token}\n"),
        format!("\t{token}"),
        format!("{header}. {rest}"),
        format!("Bearer {token}"),
        format!("{header}=.{rest}"),
        format!("{token}=="),
        token.replace('-', "+").replace('_', "/") + "+",
    ];
    for variant in variants {
        assert_eq!(
            fx.verify(&variant).unwrap_err(),
            TokenRejection::Malformed,
            "{variant:?}"
        );
    }
}

#[test]
fn typ_must_be_at_jwt() {
    let fx = Ed25519Fixture::new();
    for typ in [
        None,
        Some("JWT"),
        Some("jwt"),
        Some("at+jwt "),
        Some("application/jwt"),
        Some(""),
    ] {
        let mut header = json!({"alg": "EdDSA", "kid": fx.kid});
        if let Some(typ) = typ {
            header["typ"] = json!(typ);
        }
        assert_eq!(
            fx.verify(&fx.with_header(header)).unwrap_err(),
            TokenRejection::BadHeader,
            "{typ:?}"
        );
    }
}

#[test]
fn duplicate_claims_or_header_members_are_rejected() {
    let fx = Ed25519Fixture::new();
    let claims = fx.claims(now()).to_string();
    let twice = claims.replacen('{', &format!(r#"{{"sub":"{}","#, Uuid::new_v4()), 1);
    assert!(twice.matches("\"sub\"").count() == 2);
    let token = fx.sign(&fx.header(), &twice);
    assert_eq!(fx.verify(&token).unwrap_err(), TokenRejection::BadClaims);

    let header = format!(
        r#"{{"alg":"EdDSA","alg":"EdDSA","typ":"at+jwt","kid":"{}"}}"#,
        fx.kid
    );
    let token = fx.sign(&header, &claims);
    assert_eq!(fx.verify(&token).unwrap_err(), TokenRejection::BadHeader);
}

#[test]
fn a_megabyte_token_is_refused_without_work() {
    let fx = Ed25519Fixture::new();
    let valid = fx.tokens.issue(&access_claims(now())).unwrap();
    let huge = format!("{}{}", valid.expose(), "A".repeat(1024 * 1024));

    let started = Instant::now();
    let rejection = fx.verify(&huge).unwrap_err();

    assert_eq!(rejection, TokenRejection::Malformed);
    assert!(started.elapsed() < StdDuration::from_millis(100));
    let just_over = "A".repeat(JwtTokens::MAX_TOKEN_LEN + 1);
    assert_eq!(
        fx.verify(&just_over).unwrap_err(),
        TokenRejection::Malformed
    );
}

#[test]
fn a_refresh_token_is_not_a_bearer_token() {
    let fx = Ed25519Fixture::new();
    let refresh = RandomSecrets.refresh_token();
    assert_eq!(
        fx.verify(refresh.expose()).unwrap_err(),
        TokenRejection::Malformed
    );
}

#[test]
fn hs256_mode_signs_verifies_and_pins_its_algorithm() {
    let secret = generate_hs256_secret();
    let keys = SigningKeys::hs256(secret.as_bytes()).unwrap();
    let kid = keys.active_kid().to_owned();
    let tokens = JwtTokens::new(keys, JwtConfig::default());
    let claims = access_claims(now());

    let token = tokens.issue(&claims).unwrap();
    assert_eq!(tokens.verify(token.expose(), now()).unwrap(), claims);
    assert_eq!(
        segment(token.expose(), 0),
        json!({"alg": "HS256", "typ": "at+jwt", "kid": kid})
    );

    let fx = Ed25519Fixture::new();
    let body = fx.claims(now()).to_string();
    let eddsa = fx.sign(
        &json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid}).to_string(),
        &body,
    );
    assert_eq!(
        tokens.verify(&eddsa, now()).unwrap_err(),
        TokenRejection::BadHeader
    );

    let header = json!({"alg": "HS256", "typ": "at+jwt", "kid": kid}).to_string();
    let wrong_secret = sign_hs256(generate_hs256_secret().as_bytes(), &header, &body);
    assert_eq!(
        tokens.verify(&wrong_secret, now()).unwrap_err(),
        TokenRejection::BadSignature
    );
    let right_secret = sign_hs256(secret.as_bytes(), &header, &body);
    assert!(tokens.verify(&right_secret, now()).is_ok());
    let none = format!(
        "{}.{}.AAAA",
        b64(json!({"alg": "none", "typ": "at+jwt", "kid": kid}).to_string()),
        b64(&body)
    );
    assert_eq!(
        tokens.verify(&none, now()).unwrap_err(),
        TokenRejection::BadHeader
    );
}
