//! The HTTP adapter of Portcullis (poem + poem-openapi) and its start-up.
//!
//! Handlers parse requests into domain types, call the domain services, and
//! map each domain error to one status and problem `code`.
//!
//! - `routes/<tag>/<use case>.rs`: the operations, one use case per file.
//! - `http/`: middleware, client addresses and the bearer scheme.
//! - `problem`: the one error format; `state`: what handlers reach.
//! - `openapi`: the document; `wiring`: settings to services;
//!   `jobs/`: background jobs; `app`: assembly and serving.
//! - `settings`, `telemetry`, `metrics`: configuration and observability.

pub mod app;
pub mod http;
pub mod jobs;
pub mod metrics;
pub mod openapi;
pub mod problem;
pub mod routes;
pub mod settings;
pub mod state;
pub mod telemetry;
pub mod wiring;

pub use app::Application;
pub use openapi::{openapi_json, openapi_yaml};
pub use settings::Settings;
