//! The typed client: one method per operation of the HTTP surface, named
//! after it, each sending an ordinary request and returning the raw
//! [`Response`] so that tests assert status, headers and body themselves.
//!
//! A test that means to send something odd (a raw or oversized body, a wrong
//! content type, a strange or missing `Authorization` header, spoofed
//! forwarding headers, an unknown path or method) builds it from
//! [`TestApp::request`] instead.

use reqwest::{Method, RequestBuilder, Response};
use serde_json::{Value, json};

use super::TestApp;

async fn send(request: RequestBuilder) -> Response {
    request.send().await.unwrap()
}

impl TestApp {
    /// A request to `path` (query included, if any) on this server, for a
    /// test to shape by hand.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    fn authed(&self, method: Method, path: &str, token: &str) -> RequestBuilder {
        self.request(method, path).bearer_auth(token)
    }

    // --- Auth -------------------------------------------------------------

    /// `POST /api/v1/auth/signup` (signUp).
    pub async fn sign_up(&self, email: &str, password: &str) -> Response {
        send(
            self.request(Method::POST, "/api/v1/auth/signup")
                .json(&json!({"email": email, "password": password})),
        )
        .await
    }

    /// `POST /api/v1/auth/login` (logIn).
    pub async fn log_in(&self, email: &str, password: &str) -> Response {
        send(
            self.request(Method::POST, "/api/v1/auth/login")
                .json(&json!({"email": email, "password": password})),
        )
        .await
    }

    /// `POST /api/v1/auth/refresh` (refreshTokens).
    pub async fn refresh(&self, refresh_token: &str) -> Response {
        send(
            self.request(Method::POST, "/api/v1/auth/refresh")
                .json(&json!({"refresh_token": refresh_token})),
        )
        .await
    }

    /// `POST /api/v1/auth/logout` (logOut); `scope` is `this`, `all` or
    /// `others` (or anything else, to test refusals), and `None` sends no
    /// `scope` parameter at all.
    pub async fn log_out(&self, token: &str, scope: Option<&str>) -> Response {
        let mut request = self.authed(Method::POST, "/api/v1/auth/logout", token);
        if let Some(scope) = scope {
            request = request.query(&[("scope", scope)]);
        }
        send(request).await
    }

    /// `POST /api/v1/auth/logout` (logOut) with `body` as its JSON body and
    /// `scope`, if any, in the query.
    pub async fn log_out_with_body(
        &self,
        token: &str,
        scope: Option<&str>,
        body: &serde_json::Value,
    ) -> Response {
        let mut request = self
            .authed(Method::POST, "/api/v1/auth/logout", token)
            .json(body);
        if let Some(scope) = scope {
            request = request.query(&[("scope", scope)]);
        }
        send(request).await
    }

    /// `GET /api/v1/auth/verify` (verifyToken), the gateways' forward-auth.
    pub async fn verify(&self, token: &str) -> Response {
        send(self.authed(Method::GET, "/api/v1/auth/verify", token)).await
    }

    /// `GET /api/v1/auth/events` (listAuthEvents) with query parameters
    /// such as `("type", "logout")`, `("limit", "3")`, `("before", cursor)`.
    pub async fn events(&self, token: &str, query: &[(&str, &str)]) -> Response {
        send(
            self.authed(Method::GET, "/api/v1/auth/events", token)
                .query(query),
        )
        .await
    }

    // --- Users and sessions -----------------------------------------------

    /// `GET /api/v1/users/me` (getMe).
    pub async fn me(&self, token: &str) -> Response {
        send(self.authed(Method::GET, "/api/v1/users/me", token)).await
    }

    /// `GET /api/v1/sessions` (listSessions).
    pub async fn list_sessions(&self, token: &str) -> Response {
        send(self.authed(Method::GET, "/api/v1/sessions", token)).await
    }

    /// `DELETE /api/v1/sessions/{id}` (revokeSession).
    pub async fn revoke_session(&self, token: &str, id: &str) -> Response {
        send(self.authed(Method::DELETE, &format!("/api/v1/sessions/{id}"), token)).await
    }

    // --- Tasks (the sample protected resource) -----------------------------

    /// `POST /api/v1/tasks` (createTask) with a JSON body such as
    /// `{"title": "...", "description": "..."}`.
    pub async fn create_task(&self, token: &str, body: &Value) -> Response {
        send(self.authed(Method::POST, "/api/v1/tasks", token).json(body)).await
    }

    /// `GET /api/v1/tasks` (listTasks) with query parameters such as
    /// `("limit", "2")`, `("before", cursor)`.
    pub async fn list_tasks(&self, token: &str, query: &[(&str, &str)]) -> Response {
        send(
            self.authed(Method::GET, "/api/v1/tasks", token)
                .query(query),
        )
        .await
    }

    /// `GET /api/v1/tasks/{id}` (getTask).
    pub async fn get_task(&self, token: &str, id: &str) -> Response {
        send(self.authed(Method::GET, &format!("/api/v1/tasks/{id}"), token)).await
    }

    /// `PATCH /api/v1/tasks/{id}` (updateTask) with a JSON merge body such
    /// as `{"done": true, "description": null}`.
    pub async fn update_task(&self, token: &str, id: &str, body: &Value) -> Response {
        send(
            self.authed(Method::PATCH, &format!("/api/v1/tasks/{id}"), token)
                .json(body),
        )
        .await
    }

    /// `DELETE /api/v1/tasks/{id}` (deleteTask).
    pub async fn delete_task(&self, token: &str, id: &str) -> Response {
        send(self.authed(Method::DELETE, &format!("/api/v1/tasks/{id}"), token)).await
    }

    // --- Discovery, health and documentation --------------------------------

    /// `GET /.well-known/jwks.json`: the public verification keys.
    pub async fn jwks(&self) -> Response {
        send(self.request(Method::GET, "/.well-known/jwks.json")).await
    }

    /// `GET /health/live` (getLiveness).
    pub async fn health_live(&self) -> Response {
        send(self.request(Method::GET, "/health/live")).await
    }

    /// `GET /health/ready` (getReadiness).
    pub async fn health_ready(&self) -> Response {
        send(self.request(Method::GET, "/health/ready")).await
    }

    /// `GET /openapi.json`: the OpenAPI document.
    pub async fn openapi_json(&self) -> Response {
        send(self.request(Method::GET, "/openapi.json")).await
    }

    /// `GET /openapi.yaml`: the same document as YAML.
    pub async fn openapi_yaml(&self) -> Response {
        send(self.request(Method::GET, "/openapi.yaml")).await
    }

    /// `GET /docs`: the Swagger UI page.
    pub async fn docs(&self) -> Response {
        send(self.request(Method::GET, "/docs")).await
    }

    /// `GET /favicon.ico`: the empty answer browsers get on `/docs`.
    pub async fn favicon(&self) -> Response {
        send(self.request(Method::GET, "/favicon.ico")).await
    }

    // --- Account ----------------------------------------------------------

    /// `POST /api/v1/auth/email/verify` (verifyEmail).
    pub async fn verify_email(&self, token: &str) -> Response {
        send(
            self.request(Method::POST, "/api/v1/auth/email/verify")
                .json(&json!({"token": token})),
        )
        .await
    }

    /// `POST /api/v1/users/me/email/verification` (resendVerificationEmail).
    pub async fn resend_verification(&self, access: &str) -> Response {
        send(self.authed(Method::POST, "/api/v1/users/me/email/verification", access)).await
    }

    /// `POST /api/v1/auth/password/forgot` (forgotPassword).
    pub async fn forgot_password(&self, email: &str) -> Response {
        send(
            self.request(Method::POST, "/api/v1/auth/password/forgot")
                .json(&json!({"email": email})),
        )
        .await
    }

    /// `POST /api/v1/auth/password/reset` (resetPassword).
    pub async fn reset_password(&self, token: &str, new_password: &str) -> Response {
        send(
            self.request(Method::POST, "/api/v1/auth/password/reset")
                .json(&json!({"token": token, "new_password": new_password})),
        )
        .await
    }

    /// `POST /api/v1/users/me/password` (changePassword).
    pub async fn change_password(&self, access: &str, current: &str, new: &str) -> Response {
        send(
            self.authed(Method::POST, "/api/v1/users/me/password", access)
                .json(&json!({"current_password": current, "new_password": new})),
        )
        .await
    }

    /// `POST /api/v1/users/me/email` (changeEmail).
    pub async fn change_email(&self, access: &str, new_email: &str, current: &str) -> Response {
        send(
            self.authed(Method::POST, "/api/v1/users/me/email", access)
                .json(&json!({"new_email": new_email, "current_password": current})),
        )
        .await
    }

    /// `POST /api/v1/users/me/delete` (deleteAccount).
    pub async fn delete_account(&self, access: &str, current: &str) -> Response {
        send(
            self.authed(Method::POST, "/api/v1/users/me/delete", access)
                .json(&json!({"current_password": current})),
        )
        .await
    }

    /// `GET /api/v1/users/me/export` (exportAccount).
    pub async fn export_account(&self, access: &str) -> Response {
        send(self.authed(Method::GET, "/api/v1/users/me/export", access)).await
    }
}
