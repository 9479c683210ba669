#!/usr/bin/env bash
# Installs the providers' own SDKs (pinned) into .interop/ and runs interop.py against the real
# hookgate binary. Needs python3, node and npm, and the PyPI and npm registries.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=.interop
if [ ! -x "$root/venv/bin/python" ]; then
  python3 -m venv "$root/venv"
fi
"$root/venv/bin/pip" install --quiet --disable-pip-version-check \
  stripe==16.1.0 slack-sdk==3.48.0 twilio==9.13.0 standardwebhooks==1.1.0 svix==2.9.1 cryptography==50.0.2
mkdir -p "$root/node"
if [ ! -d "$root/node/node_modules/@octokit/webhooks-methods" ]; then
  npm install --silent --no-audit --no-fund --prefix "$root/node" @octokit/webhooks-methods@6.0.0
fi
cp tests/interop/github_sign.mjs "$root/node/"
cargo build --quiet
"$root/venv/bin/python" tests/interop/interop.py "$PWD/target/debug/hookgate" "$PWD/$root/node"
