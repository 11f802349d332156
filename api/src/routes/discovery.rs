//! `/.well-known/jwks.json`: the public keys that verify access tokens.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use crate::routes::common::ApiTags;
use crate::state::AppState;

/// A public key (RFC 7517, OKP/Ed25519 per RFC 8037).
#[derive(Debug, Object)]
pub struct Jwk {
    /// Key type: `OKP`.
    pub kty: String,
    /// Curve: `Ed25519`.
    pub crv: String,
    /// The public key, base64url.
    pub x: String,
    /// Key id, as in the `kid` header of tokens it signed.
    pub kid: String,
    /// `EdDSA`.
    pub alg: String,
    /// `sig`.
    #[oai(rename = "use")]
    pub use_: String,
}

/// A JWK set. Empty in HS256 mode: a symmetric key is never published.
#[derive(Debug, Object)]
#[oai(example)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}

impl JwkSet {
    fn example_value() -> Self {
        Self {
            keys: vec![Jwk {
                kty: "OKP".to_owned(),
                crv: "Ed25519".to_owned(),
                x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo".to_owned(),
                kid: "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k".to_owned(),
                alg: "EdDSA".to_owned(),
                use_: "sig".to_owned(),
            }],
        }
    }
}

#[derive(ApiResponse)]
pub enum JwksResponse {
    /// The keys that verify access tokens; all listed keys are valid.
    #[oai(status = 200)]
    Ok(Json<JwkSet>, #[oai(header = "Cache-Control")] String),
}

/// Discovery operations.
#[derive(Default)]
pub struct DiscoveryApi;

#[OpenApi(tag = "ApiTags::Discovery")]
impl DiscoveryApi {
    /// Get the public signing keys
    ///
    /// The JWK set that verifies access tokens. During a key rotation it holds
    /// the new signing key and the older ones until their tokens expire.
    #[oai(
        path = "/.well-known/jwks.json",
        method = "get",
        operation_id = "getJwks"
    )]
    async fn jwks(&self, state: Data<&Arc<AppState>>) -> JwksResponse {
        let keys = state
            .keys
            .jwks()
            .keys
            .into_iter()
            .map(|k| Jwk {
                kty: k.kty,
                crv: k.crv,
                x: k.x,
                kid: k.kid,
                alg: k.alg,
                use_: k.use_,
            })
            .collect();
        JwksResponse::Ok(Json(JwkSet { keys }), "public, max-age=300".to_owned())
    }
}

impl poem_openapi::types::Example for JwkSet {
    fn example() -> Self {
        Self::example_value()
    }
}
