//! The OpenAPI service: which operation groups make up the API (listed once,
//! in the order of the document), its metadata, and the document as JSON or
//! YAML. The committed `openapi/openapi.json` is what this produces.

use poem_openapi::{ContactObject, LicenseObject, OpenApiService, ServerObject};

use crate::routes::account::AccountApi;
use crate::routes::auth::AuthApi;
use crate::routes::discovery::DiscoveryApi;
use crate::routes::events::EventsApi;
use crate::routes::health::HealthApi;
use crate::routes::mfa::MfaApi;
use crate::routes::sessions::SessionsApi;
use crate::routes::tasks::TasksApi;
use crate::routes::users::UsersApi;

/// Every operation group, in the order of the document.
pub type Apis = (
    AuthApi,
    EventsApi,
    UsersApi,
    AccountApi,
    MfaApi,
    SessionsApi,
    TasksApi,
    DiscoveryApi,
    HealthApi,
);

/// The OpenAPI service: the document, Swagger UI, and the operations.
pub fn openapi_service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(Apis::default(), "Portcullis", env!("CARGO_PKG_VERSION"))
        .description(
            "Authentication and JWT security service. Sign up and log in with email and password, call protected APIs with short-lived \
             JWT access tokens, rotate refresh tokens, and log out for real. Every error is \
             `application/problem+json` (RFC 9457) with a stable `code`.",
        )
        .license(
            LicenseObject::new("Apache-2.0").url("https://www.apache.org/licenses/LICENSE-2.0"),
        )
        .contact(
            ContactObject::new()
                .name("Portcullis maintainers")
                .url("https://portcullis.dev"),
        )
        .server(ServerObject::new("/").description("This server"))
}

/// The document as JSON.
pub fn openapi_json() -> String {
    openapi_service().spec()
}

/// The document as YAML.
pub fn openapi_yaml() -> String {
    openapi_service().spec_yaml()
}
