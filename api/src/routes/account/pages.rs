//! The account page at `/account` (sign in with a password and a second
//! factor, sessions, events, TOTP on and off, recovery codes, password
//! change: an example
//! client of the public API that keeps its tokens in memory only) and the
//! pages the emailed links open, `/account/verify-email` and
//! `/account/reset-password`, with their scripts and stylesheet. Plain HTML
//! and JavaScript compiled into the binary. Opening a page consumes nothing:
//! the token stays in the URL's fragment (never sent to the server) until
//! the user presses the button, which POSTs it. Served with a strict CSP,
//! no caching, no referrer and no framing.

use poem::http::{StatusCode, header};
use poem::{Endpoint, Response, Route, get, handler};

const ACCOUNT: &str = include_str!("../../../assets/account/index.html");
const ACCOUNT_SCRIPT: &str = include_str!("../../../assets/account/app.js");
const VERIFY_EMAIL: &str = include_str!("../../../assets/account/verify-email.html");
const RESET_PASSWORD: &str = include_str!("../../../assets/account/reset-password.html");
const SCRIPT: &str = include_str!("../../../assets/account/account.js");
const STYLE: &str = include_str!("../../../assets/account/account.css");

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn page(body: &'static str, content_type: &'static str) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .content_type(content_type)
        .header(header::CONTENT_SECURITY_POLICY, CSP)
        .header(header::CACHE_CONTROL, "no-store")
        .header(header::REFERRER_POLICY, "no-referrer")
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::X_FRAME_OPTIONS, "DENY")
        .body(body)
}

#[handler]
fn account() -> Response {
    page(ACCOUNT, "text/html; charset=utf-8")
}

#[handler]
fn account_script() -> Response {
    page(ACCOUNT_SCRIPT, "text/javascript; charset=utf-8")
}

#[handler]
fn verify_email() -> Response {
    page(VERIFY_EMAIL, "text/html; charset=utf-8")
}

#[handler]
fn reset_password() -> Response {
    page(RESET_PASSWORD, "text/html; charset=utf-8")
}

#[handler]
fn script() -> Response {
    page(SCRIPT, "text/javascript; charset=utf-8")
}

#[handler]
fn style() -> Response {
    page(STYLE, "text/css; charset=utf-8")
}

/// The routes under `/account`.
pub fn routes() -> impl Endpoint {
    Route::new()
        .at("/", get(account))
        .at("/verify-email", get(verify_email))
        .at("/assets/app.js", get(account_script))
        .at("/reset-password", get(reset_password))
        .at("/assets/account.js", get(script))
        .at("/assets/account.css", get(style))
}
