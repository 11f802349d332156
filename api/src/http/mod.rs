//! The HTTP plumbing around the operations: the middleware every request
//! passes, the client-address policy it applies, and the bearer security
//! scheme that guards the protected operations. No operation lives here.

pub mod client_ip;
pub mod connections;
pub mod middleware;
pub mod optional_json;
pub mod security;
