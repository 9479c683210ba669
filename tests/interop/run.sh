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
  stripe==16.1.0 slack-sdk==3.48.0 twilio==9.13.0 standardwebhooks==1.1.0 svix==2.9.1 cryptography==50.0.2 \
  discord-interactions==0.4.0 pynacl==1.6.2
mkdir -p "$root/node"
# @zoom/rivet is Zoom's Node SDK; whatsapp@0.0.5-Alpha is Meta's WhatsApp Node SDK (the later
# 1.0.0 of that name is not Meta's).
node_pins=(@octokit/webhooks-methods@6.0.0 @zoom/rivet@0.4.0 whatsapp@0.0.5-Alpha)
for pin in "${node_pins[@]}"; do
  name=${pin%@*} version=${pin##*@}
  manifest="$root/node/node_modules/$name/package.json"
  if [ ! -f "$manifest" ] || ! grep -q "\"version\": *\"$version\"" "$manifest"; then
    npm install --silent --no-audit --no-fund --save-exact --prefix "$root/node" "${node_pins[@]}"
    break
  fi
done
cp tests/interop/github_sign.mjs tests/interop/zoom_rivet.mjs tests/interop/meta_sign.cjs "$root/node/"
cargo build --quiet
"$root/venv/bin/python" tests/interop/interop.py "$PWD/target/debug/hookgate" "$PWD/$root/node"
