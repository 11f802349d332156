#!/usr/bin/env bash
# The OpenAPI document as a tested contract. One script, run by CI:
#
#   1. installs its tools, pinned: npm ci (openapi/package-lock.json), a venv
#      at openapi/.venv from openapi/requirements.txt, and Debian's chromium
#      if /usr/bin/chromium is missing;
#   2. checks the committed document: it is what the server serves, it is
#      valid OpenAPI 3 (openapi-spec-validator) and it meets the contract
#      checklist (openapi/check_document.py);
#   3. builds and starts the server on a free port with a temporary data dir,
#      its public URL set to its own address and no SMTP, so that its emails
#      are written as .eml files into $data_dir/mail (MAIL_DIR);
#   4. generates a TypeScript client (openapi-typescript + openapi-fetch) and
#      a Python client (openapi-python-client) into openapi/.generated/ with
#      zero generator warnings, type-checks them (tsc --noEmit, mypy --strict)
#      and runs a smoke program with each against the server, email
#      verification and password reset through the emailed links included;
#   5. drives Swagger UI at /docs in headless Chromium (playwright-core);
#   6. drives the account pages that the emails link to (verify email, reset
#      password) and the account page at /account (sign-up, TOTP enrolment,
#      the second step of a sign-in, sessions) in headless Chromium;
#   7. fuzzes every operation with schemathesis as a signed-up user;
#   8. stops the server and exits non-zero if any step failed.
#
# Environment: CONTRACT_FUZZ_EXAMPLES (default 100 per operation and phase),
# CONTRACT_FUZZ_SEED (default fixed, for reproducible CI runs), CHROMIUM
# (default /usr/bin/chromium). Artifacts (git-ignored) go to ci-artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OPENAPI=$ROOT/openapi
GENERATED=$OPENAPI/.generated
VENV=$OPENAPI/.venv
ARTIFACTS=$ROOT/ci-artifacts
PORTCULLIS=${CARGO_TARGET_DIR:-$ROOT/target}/debug/portcullis
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
FUZZ_EXAMPLES=${CONTRACT_FUZZ_EXAMPLES:-100}
FUZZ_SEED=${CONTRACT_FUZZ_SEED:-20261124}
# Plain logs: no colours, and no live progress bars from schemathesis.
export CARGO_TERM_COLOR=never NO_COLOR=1 TERM=dumb
export npm_config_fund=false npm_config_audit=false npm_config_update_notifier=false
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1

started=$SECONDS
passed=0
failed=0
failures=()
server_pid=
data_dir=

log() { echo "contract-tests: $*"; }

# Runs one named step in a subshell with `set -e`; records, never aborts.
step() {
  local name=$1
  shift
  local began=$SECONDS rc
  echo
  echo "=== contract: $name ==="
  set +e
  (
    set -euo pipefail
    "$@"
  )
  rc=$?
  set -e
  if [ "$rc" -eq 0 ]; then
    passed=$((passed + 1))
    echo "--- ok: $name ($((SECONDS - began)) s)"
  else
    failed=$((failed + 1))
    failures+=("$name")
    echo "--- FAILED: $name (exit $rc, $((SECONDS - began)) s)"
  fi
}

# A step whose failure makes the later ones meaningless.
must() {
  local before=$failed
  step "$@"
  if [ "$failed" -ne "$before" ]; then
    summary
    exit 1
  fi
}

summary() {
  echo
  if [ "$failed" -ne 0 ]; then
    log "failed steps: ${failures[*]}"
  fi
  log "finished in $((SECONDS - started)) s"
  echo "contract: $passed passed, $failed failed"
}

cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 50); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.2
    done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [ -n "$data_dir" ]; then
    rm -rf "$data_dir"
  fi
}
trap cleanup EXIT

# Prints its output and fails if a generator said anything beyond the lines it
# prints on every clean run: "zero generator warnings" is enforced here.
quiet_generator() {
  local allowed=$1 out
  shift
  out=$("$@" 2>&1) || {
    echo "$out"
    return 1
  }
  echo "$out"
  if echo "$out" | grep -Ev "$allowed" | grep -q '[^[:space:]]'; then
    echo "the generator printed warnings (above); the document must generate cleanly" >&2
    return 1
  fi
}

# --- 1. tools -----------------------------------------------------------------

install_tools() {
  for tool in node npm python3 cargo curl; do
    command -v "$tool" >/dev/null || {
      echo "$tool is required" >&2
      return 1
    }
  done
  local node_major
  node_major=$(node -p 'process.versions.node.split(".")[0]')
  [ "$node_major" -ge 20 ] || {
    echo "Node.js 20 or newer is required (found $(node --version))" >&2
    return 1
  }

  if [ ! -x "$CHROMIUM" ]; then
    log "installing Debian's chromium"
    local sudo=
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
  fi
  "$CHROMIUM" --version 2>/dev/null

  (cd "$OPENAPI" && npm ci --no-audit --no-fund --loglevel=error)

  # The venv is rebuilt only when requirements.txt changes.
  local stamp=$VENV/.requirements.sha256 want
  want=$(sha256sum "$OPENAPI/requirements.txt" | cut -d' ' -f1)
  if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --require-virtualenv -r "$OPENAPI/requirements.txt"
    echo "$want" >"$stamp"
  fi
  "$VENV/bin/pip" check
}

# --- 2. the document ------------------------------------------------------------

build_server() {
  cargo build --quiet -p portcullis-api
}

document_is_current() {
  local served
  served=$(mktemp)
  "$PORTCULLIS" openapi --format json >"$served"
  if ! diff -q "$served" "$OPENAPI/openapi.json" >/dev/null; then
    rm -f "$served"
    echo "openapi/openapi.json is not the code's document: run scripts/openapi.sh" >&2
    return 1
  fi
  "$PORTCULLIS" openapi --format yaml >"$served"
  if ! diff -q "$served" "$OPENAPI/openapi.yaml" >/dev/null; then
    rm -f "$served"
    echo "openapi/openapi.yaml is not the code's document: run scripts/openapi.sh" >&2
    return 1
  fi
  rm -f "$served"
  echo "openapi/openapi.json and openapi/openapi.yaml are the code's document"
}

validate_document() {
  "$VENV/bin/openapi-spec-validator" "$OPENAPI/openapi.json" "$OPENAPI/openapi.yaml"
  "$VENV/bin/python" "$OPENAPI/check_document.py" "$OPENAPI/openapi.json"
}

# --- 3. the server --------------------------------------------------------------

start_server() {
  local port
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  data_dir=$(mktemp -d)
  mkdir -p "$ARTIFACTS"
  BASE_URL=http://127.0.0.1:$port
  # No SMTP is configured: the server writes each email into $data_dir/mail.
  MAIL_DIR=$data_dir/mail
  # The fuzz set-up and the two SDK smoke programs log in a score of times
  # from one address within a minute: a log-in budget that never gets in
  # their way (lockouts after wrong passwords still apply).
  env -u DATABASE_URL -u REDIS_URL \
    PORTCULLIS_BIND="127.0.0.1:$port" \
    PORTCULLIS_DATA_DIR="$data_dir" \
    PORTCULLIS_PUBLIC_URL="$BASE_URL" \
    PORTCULLIS_RATE_LIMIT_LOGIN_PER_MIN=600 \
    PORTCULLIS_RATE_LIMIT_LOGIN_BURST=100 \
    RUST_LOG="${RUST_LOG:-warn}" \
    "$PORTCULLIS" serve >"$ARTIFACTS/contract-server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 150); do
    if curl -fsS "$BASE_URL/health/live" >/dev/null 2>&1; then
      log "server $server_pid listening on $BASE_URL (data in $data_dir)"
      export BASE_URL MAIL_DIR
      return 0
    fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
      break
    fi
    sleep 0.2
  done
  echo "the server did not become live; its log:" >&2
  tail -n 40 "$ARTIFACTS/contract-server.log" >&2
  return 1
}

# --- 4. SDKs --------------------------------------------------------------------

# The generate and type-check commands here are the ones the README quotes
# ("Client SDKs and the contract"); keep the two in step.
typescript_sdk() {
  cd "$OPENAPI"
  rm -rf .generated/ts .generated/ts-dist
  quiet_generator '^(✨ openapi-typescript [0-9.]+|🚀 openapi\.json → .* \[[0-9.]+m?s\])$' \
    node_modules/.bin/openapi-typescript openapi.json --output .generated/ts/schema.d.ts
  node_modules/.bin/tsc --noEmit -p tsconfig.json
  echo "tsc --noEmit: the generated types and the smoke program type-check"
  # Already type-checked: emit the smoke program's JavaScript without checking again.
  node_modules/.bin/tsc -p tsconfig.json --noCheck
  PORTCULLIS_URL=$BASE_URL MAIL_DIR=$MAIL_DIR node .generated/ts-dist/sdk-smoke/smoke.js
}

python_sdk() {
  cd "$OPENAPI"
  rm -rf .generated/python
  # openapi-python-client runs ruff (from the venv) on what it generates.
  PATH=$PWD/.venv/bin:$PATH quiet_generator '^Generating .*$' \
    .venv/bin/openapi-python-client generate --path openapi.json --output-path .generated/python --meta setup
  .venv/bin/mypy --config-file mypy.ini .generated/python/portcullis_client sdk-smoke/smoke.py
  PYTHONPATH=.generated/python PORTCULLIS_URL=$BASE_URL MAIL_DIR=$MAIL_DIR .venv/bin/python sdk-smoke/smoke.py
}

# --- 5. Swagger UI --------------------------------------------------------------

swagger_ui() {
  cd "$OPENAPI"
  rm -f "$ARTIFACTS/swagger-ui.png" "$ARTIFACTS/swagger-ui-failure.png"
  PORTCULLIS_URL=$BASE_URL CHROMIUM=$CHROMIUM SCREENSHOT=$ARTIFACTS/swagger-ui.png \
    timeout 180 node swagger-ui.test.mjs
}

# --- 6. account pages -----------------------------------------------------------

account_pages() {
  cd "$OPENAPI"
  rm -f "$ARTIFACTS/account-pages.png" "$ARTIFACTS/account-pages-failure.png"
  PORTCULLIS_URL=$BASE_URL MAIL_DIR=$MAIL_DIR CHROMIUM=$CHROMIUM SCREENSHOT=$ARTIFACTS/account-pages.png \
    timeout 180 node account-pages.test.mjs
}

# The account page at /account, used as a person would: sign up, enrol TOTP
# from the page's secret, sign out, sign in with the second step, sessions,
# password change, new recovery codes, TOTP turned off
# (openapi/account-app.test.mjs).
account_app() {
  cd "$OPENAPI"
  rm -f "$ARTIFACTS/account-app.png" "$ARTIFACTS/account-app-failure.png"
  PORTCULLIS_URL=$BASE_URL CHROMIUM=$CHROMIUM SCREENSHOT=$ARTIFACTS/account-app.png \
    timeout 180 node account-app.test.mjs
}

# --- 7. fuzzing -----------------------------------------------------------------

# Signs up one user and opens three sessions: one for the general run, one for
# revokeSession and one for logOut, so that a revocation found by the fuzzer
# cannot blind the other runs; and two more sessions whose ids the
# revokeSession run is given (openapi/schemathesis.toml) so that it revokes
# real sessions too, not only unknown ids. Taken before any fuzzing: the
# fuzzer's failed log-ins lock this client out of logging in for a while.
fuzz_tokens() {
  mkdir -p "$GENERATED"
  "$VENV/bin/python" - "$BASE_URL" "$GENERATED/fuzz-sessions.dict" <<'PY'
import base64, json, secrets, sys, time, urllib.request

base, dictionary = sys.argv[1], sys.argv[2]
email = f"fuzzer-{time.time_ns()}@example.com"
# Not the documents' example password: the examples phase sends the
# examples of deleteAccount, changePassword and enrolTotp as they are, and
# with the fuzzing user's own password they would delete the account (and
# every token the runs use) or change it.
password = f"fuzzing only {secrets.token_hex(8)}"
body = json.dumps({"email": email, "password": password}).encode()

def post(path: str) -> str:
    request = urllib.request.Request(base + path, data=body, headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)["access_token"]

def session_id(token: str) -> str:
    claims = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))["sid"]

tokens = [post("/api/v1/auth/signup"), post("/api/v1/auth/login"), post("/api/v1/auth/login")]
with open(dictionary, "w", encoding="utf-8") as f:
    for _ in range(2):
        f.write(f'"{session_id(post("/api/v1/auth/login"))}"\n')
print("\n".join(tokens))
PY
}

# Every check, positive and negative data acceptance included; their
# expected statuses are in openapi/schemathesis.toml.
FUZZ_CHECKS=all

fuzz() {
  local token=$1
  shift
  cd "$OPENAPI"
  timeout 300 "$VENV/bin/schemathesis" --config-file schemathesis.toml --no-color run openapi.json \
    --url "$BASE_URL" \
    --header "Authorization: Bearer $token" \
    --checks "$FUZZ_CHECKS" \
    --phases examples,coverage,fuzzing,stateful \
    --max-examples "$FUZZ_EXAMPLES" \
    --seed "$FUZZ_SEED" \
    --request-timeout 30 \
    "$@"
}

# --- run ------------------------------------------------------------------------

log "CI=${CI:-unset}; fuzzing with $FUZZ_EXAMPLES examples, seed $FUZZ_SEED"
must "install pinned tools (npm ci, pip venv, chromium)" install_tools
must "build the server (cargo build -p portcullis-api)" build_server
step "committed document is the code's document" document_is_current
step "document validates as OpenAPI 3 and meets the checklist" validate_document

# In this shell, not a step's subshell: cleanup needs the server's pid.
echo
echo "=== contract: start the server ==="
if start_server; then
  passed=$((passed + 1))
  echo "--- ok: start the server"
else
  failed=$((failed + 1))
  failures+=("start the server")
  summary
  exit 1
fi
# Taken now, before the browser test and SDK smokes add their own users.
mapfile -t FUZZ_TOKENS < <(fuzz_tokens) || true
if [ "${#FUZZ_TOKENS[@]}" -ne 3 ]; then
  echo "could not sign up the fuzzing user" >&2
  summary
  exit 1
fi

step "TypeScript SDK: generate, tsc --noEmit, smoke" typescript_sdk
step "Python SDK: generate, mypy --strict, smoke" python_sdk
step "Swagger UI in headless Chromium" swagger_ui
step "account pages in headless Chromium" account_pages
step "account page (/account) in headless Chromium" account_app
step "schemathesis: every operation but revokeSession and logOut" \
  fuzz "${FUZZ_TOKENS[0]}" --exclude-operation-id revokeSession --exclude-operation-id logOut
step "schemathesis: revokeSession" fuzz "${FUZZ_TOKENS[1]}" --include-operation-id revokeSession
step "schemathesis: logOut" fuzz "${FUZZ_TOKENS[2]}" --include-operation-id logOut

cleanup
server_pid=
data_dir=
summary
[ "$failed" -eq 0 ]
