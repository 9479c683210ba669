#!/usr/bin/env bash
# Property-based fuzzing of the admin API: Schemathesis (pinned) generates requests from the
# committed openapi.json, valid and invalid, sends them to a real `hookgate serve`, and checks
# every answer against the document (`--checks all`: status codes, content types, schemas, that
# valid requests are accepted and invalid ones refused, that the token is required, that what
# is created can be read and what is deleted is gone). Any failure fails the run.
#
# The gateway and the fuzzer run in a network namespace of their own with only a loopback
# interface: endpoints the fuzzer creates have made-up URLs, and deliveries to them must not
# leave the machine. Needs python3, unshare and ip, as root, and PyPI for the first run (the
# venv stays in .api_fuzz/). API_FUZZ_SEED and API_FUZZ_MAX_EXAMPLES (cases per operation)
# change the run; further arguments go to `schemathesis run`.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ "${1:-}" = "--inside" ]; then
  root=.api_fuzz
  ip link set lo up
  tmp=$(mktemp -d "$PWD/$root/run.XXXXXX")
  token="api-fuzz-token"
  cat >"$tmp/hookgate.toml" <<EOF
data_dir = "$tmp/data"
[ingress]
listen = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
token = "$token"
[delivery]
timeout = "2s"
retry = { max_attempts = 2, base = "1s", max_delay = "2s", max_age = "1m" }
[[sources]]
id = "orders"
verify = "standard-webhooks"
secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
[[endpoints]]
id = "billing"
url = "https://billing.example.com/hooks"
secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
EOF
  target/debug/hookgate serve --config "$tmp/hookgate.toml" 2>"$tmp/hookgate.log" &
  pid=$!
  stop() {
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -rf "$tmp"
  }
  trap stop EXIT
  addr=
  for _ in $(seq 100); do
    addr=$(sed -n 's/.*admin listening addr=\([0-9.:]*\).*/\1/p' "$tmp/hookgate.log" 2>/dev/null | head -n1 || true)
    [ -n "$addr" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$addr" ]; then
    cat "$tmp/hookgate.log" >&2
    echo "api_fuzz: hookgate did not start" >&2
    exit 1
  fi
  status=0
  # One worker and a fixed seed: the same requests in the same order on every run. Hypothesis's
  # too_slow health check times its own generation, so a loaded machine could fail it: off.
  "$root/venv/bin/schemathesis" --config-file tests/api_fuzz/schemathesis.toml run openapi.json \
    --url "http://$addr" \
    --header "Authorization: Bearer $token" \
    --checks all \
    --max-examples "${API_FUZZ_MAX_EXAMPLES:-100}" \
    --seed "${API_FUZZ_SEED:-20261130}" \
    --workers 1 \
    --generation-database none \
    --request-timeout 10 \
    --suppress-health-check too_slow \
    --no-color \
    "${@:2}" || status=$?
  if [ "$status" -ne 0 ]; then
    echo "api_fuzz: schemathesis found failures (exit $status)" >&2
  fi
  exit "$status"
fi

root=.api_fuzz
if [ ! -x "$root/venv/bin/python" ]; then
  python3 -m venv "$root/venv"
fi
"$root/venv/bin/pip" install --quiet --disable-pip-version-check schemathesis==4.32.5
cargo build --quiet
exec unshare --net bash "$0" --inside "$@"
