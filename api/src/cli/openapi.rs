//! `portcullis openapi`: print the OpenAPI document.

use clap::ValueEnum;
use portcullis_api::{openapi_json, openapi_yaml};

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Json,
    Yaml,
}

/// Prints the document in `format`.
pub fn run(format: Format) {
    match format {
        Format::Json => println!("{}", openapi_json()),
        Format::Yaml => print!("{}", openapi_yaml()),
    }
}
