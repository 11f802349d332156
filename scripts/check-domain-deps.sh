#!/usr/bin/env bash
# Fails when the domain crate depends, even transitively, on an adapter
# technology (DESIGN.md: domain knows nothing of HTTP, SQL or crypto libraries).
set -euo pipefail
cd "$(dirname "$0")/.."
forbidden='^(poem|poem-openapi|sea-orm|sea-query|sqlx|jsonwebtoken|argon2|aws-lc-rs|ring|opentelemetry|tokio|reqwest|redis|hyper) '
found=$(cargo tree -p portcullis-domain -e normal --prefix none --offline 2>/dev/null | grep -E "$forbidden" || true)
if [ -n "$found" ]; then
  echo "domain depends on forbidden crates:" >&2
  echo "$found" | sort -u >&2
  exit 1
fi
echo "domain dependency check: ok (none of poem, sea-orm, sqlx, jsonwebtoken, argon2, opentelemetry, tokio)"
