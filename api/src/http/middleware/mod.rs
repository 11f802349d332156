//! The middleware around every route, one file each, outermost last:
//! `body_limit` (413 over 16 KiB), `problem` (poem's own errors as problem
//! details) and `request_scope` (ids, span, client address, duration), with
//! the `route_templates` that name its spans and metrics.

pub mod body_limit;
pub mod problem;
pub mod request_scope;
pub mod route_templates;
