#!/usr/bin/env bash
# Regenerates the committed OpenAPI document from the code.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --quiet -p portcullis-api -- openapi --format json > openapi/openapi.json
cargo run --quiet -p portcullis-api -- openapi --format yaml > openapi/openapi.yaml
echo "openapi/openapi.json and openapi/openapi.yaml regenerated"
