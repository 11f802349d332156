//! The HTTP adapter of Portcullis (poem + poem-openapi) and its start-up.
//!
//! Handlers parse requests into domain types, call the domain services, and
//! map each domain error to one status and problem `code`.

pub mod app;
pub mod client_ip;
pub mod metrics;
pub mod problem;
pub mod routes;
pub mod security;
pub mod settings;
pub mod telemetry;

pub use app::{Application, openapi_json, openapi_yaml};
pub use settings::Settings;
