"""Interoperability: the providers' own SDKs sign webhooks, the real hookgate binary judges them.

Run by tests/interop/run.sh (which installs the pinned SDKs). Usage:
    python interop.py HOOKGATE_BINARY NODE_DIR
Prints one line per case and a closing 'interop: N passed, M failed'.
"""

import base64
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone

import slack_sdk.signature
import standardwebhooks
import stripe
import svix.webhooks
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives import serialization
from twilio.request_validator import RequestValidator

BINARY, NODE_DIR = sys.argv[1], sys.argv[2]
PUBLIC_TWILIO_URL = "https://hooks.example.com/in/twilio"

SW_OLD = "whsec_" + base64.b64encode(b"o" * 24).decode()
SW_NEW = "whsec_" + base64.b64encode(os.urandom(32)).decode()
ED_KEY = Ed25519PrivateKey.generate()
ED_PUBLIC = "whpk_" + base64.b64encode(
    ED_KEY.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
).decode()

SECRETS = {
    "stripe": ["whsec_interop_old", "whsec_interop_new"],
    "github": ["gh-old-secret", "gh-new-secret"],
    "slack": ["8f742231b10e8888abcd99yyyzzz85a5", "0123456789abcdef0123456789abcdef"],
    "twilio": ["old-auth-token", "new-auth-token"],
    "sw": [SW_OLD, SW_NEW],
    "svix": [SW_OLD, SW_NEW],
    "ed": [ED_PUBLIC],
}
SCHEMES = {"stripe": "stripe", "github": "github", "slack": "slack", "twilio": "twilio",
           "sw": "standard-webhooks", "svix": "standard-webhooks", "ed": "standard-webhooks"}

results = []


def check(name, got, want):
    ok = got == want
    results.append(ok)
    print(f"{'ok  ' if ok else 'FAIL'} {name}: got {got}, want {want}", flush=True)


def start_gateway(tmp):
    lines = [f'data_dir = "{tmp}/data"', "[ingress]", 'listen = "127.0.0.1:0"', "[admin]", 'listen = "127.0.0.1:0"']
    for sid, secrets in SECRETS.items():
        lines += ["[[sources]]", f'id = "{sid}"', f'verify = "{SCHEMES[sid]}"', f"secrets = {json.dumps(secrets)}"]
        if sid == "twilio":
            lines.append(f'public_url = "{PUBLIC_TWILIO_URL}"')
    path = os.path.join(tmp, "hookgate.toml")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    proc = subprocess.Popen([BINARY, "serve", "--config", path], stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        if "ingress listening addr=" in line:
            addr = line.split("ingress listening addr=")[1].strip()
            break
    else:
        raise SystemExit("hookgate did not start")
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
    return proc, f"http://{addr}"


def post(url, body, headers):
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def code(answer):
    return (answer or {}).get("error", {}).get("code")


def now():
    return int(time.time())


def stripe_header(secret, t, payload):
    sig = stripe.WebhookSignature._compute_signature(f"{t}.{payload}", secret)
    return f"t={t},v1={sig}"


def run(base):
    # Stripe: the secret is used as-is; dedup on the body's id.
    url = f"{base}/in/stripe"
    for label, secret in [("new secret", "whsec_interop_new"), ("rotated-out secret", "whsec_interop_old")]:
        payload = json.dumps({"id": f"evt_{label.replace(' ', '_')}", "object": "event", "type": "invoice.paid"})
        status, _ = post(url, payload.encode(), {"Stripe-Signature": stripe_header(secret, now(), payload)})
        check(f"stripe {label}", status, 202)
    payload = json.dumps({"id": "evt_new_secret", "object": "event", "type": "invoice.paid"})
    status, answer = post(url, payload.encode(), {"Stripe-Signature": stripe_header("whsec_interop_new", now(), payload)})
    check("stripe redelivery dedups on the body id", (status, answer.get("duplicate")), (200, True))
    payload = json.dumps({"id": "evt_x", "object": "event"})
    status, a = post(url, payload.encode(), {"Stripe-Signature": stripe_header("whsec_wrong", now(), payload)})
    check("stripe wrong secret", (status, code(a)), (401, "bad_signature"))
    status, a = post(url, payload.replace("evt_x", "evt_y").encode(), {"Stripe-Signature": stripe_header("whsec_interop_new", now(), payload)})
    check("stripe tampered body", (status, code(a)), (401, "bad_signature"))
    status, a = post(url, payload.encode(), {"Stripe-Signature": stripe_header("whsec_interop_new", now() - 600, payload)})
    check("stripe stale timestamp", (status, code(a)), (401, "stale_timestamp"))
    # And the other way round: the Stripe SDK accepts what `hookgate sign` makes.
    out = subprocess.run([BINARY, "sign", "--scheme", "stripe", "--secret", "whsec_interop_new"], input=payload.encode(), capture_output=True, check=True)
    header = out.stdout.decode().split(": ", 1)[1].strip()
    try:
        stripe.WebhookSignature.verify_header(payload, header, "whsec_interop_new", tolerance=300)
        check("stripe SDK verifies `hookgate sign`", True, True)
    except Exception as e:  # noqa: BLE001
        check(f"stripe SDK verifies `hookgate sign` ({e})", False, True)

    # GitHub, signed by @octokit/webhooks-methods.
    url = f"{base}/in/github"

    def octokit(secret, payload):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            f.write(payload)
        sig = subprocess.run(["node", "github_sign.mjs", secret, f.name], cwd=NODE_DIR, capture_output=True, text=True, check=True).stdout
        os.unlink(f.name)
        return sig

    payload = '{"zen":"Keep it logically awesome.","hook_id":1,"unicode":"\\u001B ♥"}'
    for label, secret, delivery in [("new secret", "gh-new-secret", "d-1"), ("rotated-out secret", "gh-old-secret", "d-2")]:
        status, _ = post(url, payload.encode(), {"X-Hub-Signature-256": octokit(secret, payload), "X-GitHub-Delivery": delivery, "X-GitHub-Event": "ping"})
        check(f"github {label}", status, 202)
    status, answer = post(url, payload.encode(), {"X-Hub-Signature-256": octokit("gh-new-secret", payload), "X-GitHub-Delivery": "d-1", "X-GitHub-Event": "ping"})
    check("github redelivery dedups on X-GitHub-Delivery", (status, answer.get("duplicate")), (200, True))
    status, a = post(url, payload.encode(), {"X-Hub-Signature-256": octokit("gh-wrong", payload), "X-GitHub-Delivery": "d-3"})
    check("github wrong secret", (status, code(a)), (401, "bad_signature"))
    status, a = post(url, (payload + " ").encode(), {"X-Hub-Signature-256": octokit("gh-new-secret", payload), "X-GitHub-Delivery": "d-4"})
    check("github tampered body", (status, code(a)), (401, "bad_signature"))

    # Slack.
    url = f"{base}/in/slack"
    body = "token=x&team_id=T1&command=%2Fdeploy&text=prod"
    for label, secret in [("new secret", SECRETS["slack"][1]), ("rotated-out secret", SECRETS["slack"][0])]:
        ts = str(now())
        sig = slack_sdk.signature.SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
        status, _ = post(url, body.encode(), {"X-Slack-Signature": sig, "X-Slack-Request-Timestamp": ts, "Content-Type": "application/x-www-form-urlencoded"})
        check(f"slack {label}", status, 202)
    ts = str(now())
    sig = slack_sdk.signature.SignatureVerifier("wrong-secret").generate_signature(timestamp=ts, body=body)
    status, a = post(url, body.encode(), {"X-Slack-Signature": sig, "X-Slack-Request-Timestamp": ts})
    check("slack wrong secret", (status, code(a)), (401, "bad_signature"))
    sig = slack_sdk.signature.SignatureVerifier(SECRETS["slack"][1]).generate_signature(timestamp=ts, body=body)
    status, a = post(url, (body + "&x=1").encode(), {"X-Slack-Signature": sig, "X-Slack-Request-Timestamp": ts})
    check("slack tampered body", (status, code(a)), (401, "bad_signature"))
    old = str(now() - 600)
    sig = slack_sdk.signature.SignatureVerifier(SECRETS["slack"][1]).generate_signature(timestamp=old, body=body)
    status, a = post(url, body.encode(), {"X-Slack-Signature": sig, "X-Slack-Request-Timestamp": old})
    check("slack stale timestamp", (status, code(a)), (401, "stale_timestamp"))

    # Twilio: form posts and JSON with bodySHA256, signed for the public URL.
    url = f"{base}/in/twilio"
    params = {"CallSid": "CA123", "From": "+14158675309", "To": "+18005551212", "Body": "hello & bye"}
    form = urllib.parse.urlencode(params).encode()
    for label, token in [("new token", "new-auth-token"), ("rotated-out token", "old-auth-token")]:
        sig = RequestValidator(token).compute_signature(PUBLIC_TWILIO_URL, params)
        status, _ = post(url, form, {"X-Twilio-Signature": sig, "Content-Type": "application/x-www-form-urlencoded"})
        check(f"twilio form {label}", status, 202)
    sig = RequestValidator("wrong-token").compute_signature(PUBLIC_TWILIO_URL, params)
    status, a = post(url, form, {"X-Twilio-Signature": sig, "Content-Type": "application/x-www-form-urlencoded"})
    check("twilio wrong token", (status, code(a)), (401, "bad_signature"))
    sig = RequestValidator("new-auth-token").compute_signature(PUBLIC_TWILIO_URL, params)
    status, a = post(url, form + b"&Extra=1", {"X-Twilio-Signature": sig, "Content-Type": "application/x-www-form-urlencoded"})
    check("twilio tampered body", (status, code(a)), (401, "bad_signature"))
    body = json.dumps({"property": "value", "n": 1})
    validator = RequestValidator("new-auth-token")
    signed_url = f"{PUBLIC_TWILIO_URL}?bodySHA256={validator.compute_hash(body)}"
    sig = validator.compute_signature(signed_url, {})
    query = signed_url.split("?", 1)[1]
    status, _ = post(f"{url}?{query}", body.encode(), {"X-Twilio-Signature": sig, "Content-Type": "application/json"})
    check("twilio json with bodySHA256", status, 202)
    status, a = post(f"{url}?{query}", body.replace("value", "other").encode(), {"X-Twilio-Signature": sig, "Content-Type": "application/json"})
    check("twilio json tampered body", (status, code(a)), (401, "bad_signature"))

    # Standard Webhooks and Svix.
    for sid, lib, prefix in [("sw", standardwebhooks.Webhook, "webhook"), ("svix", svix.webhooks.Webhook, "svix")]:
        url = f"{base}/in/{sid}"
        payload = json.dumps({"type": "user.created", "data": {"id": 1}})

        def headers(secret, msg_id, ts):
            sig = lib(secret).sign(msg_id, datetime.fromtimestamp(ts, tz=timezone.utc), payload)
            return {f"{prefix}-id": msg_id, f"{prefix}-timestamp": str(ts), f"{prefix}-signature": sig, "Content-Type": "application/json"}

        for label, secret in [("new secret", SW_NEW), ("rotated-out secret", SW_OLD)]:
            status, _ = post(url, payload.encode(), headers(secret, f"msg_{sid}_{label[0]}", now()))
            check(f"{sid} {label}", status, 202)
        status, answer = post(url, payload.encode(), headers(SW_NEW, f"msg_{sid}_n", now()))
        check(f"{sid} redelivery dedups on the message id", (status, answer.get("duplicate")), (200, True))
        wrong = "whsec_" + base64.b64encode(os.urandom(24)).decode()
        status, a = post(url, payload.encode(), headers(wrong, f"msg_{sid}_w", now()))
        check(f"{sid} wrong secret", (status, code(a)), (401, "bad_signature"))
        status, a = post(url, payload.replace("1", "2").encode(), headers(SW_NEW, f"msg_{sid}_t", now()))
        check(f"{sid} tampered body", (status, code(a)), (401, "bad_signature"))
        status, a = post(url, payload.encode(), headers(SW_NEW, f"msg_{sid}_s", now() - 600))
        check(f"{sid} stale timestamp", (status, code(a)), (401, "stale_timestamp"))
    # The standardwebhooks library accepts what `hookgate sign` makes.
    out = subprocess.run([BINARY, "sign", "--scheme", "standard-webhooks", "--secret", SW_NEW], input=payload.encode(), capture_output=True, check=True)
    hdrs = dict(line.split(": ", 1) for line in out.stdout.decode().strip().split("\n"))
    try:
        standardwebhooks.Webhook(SW_NEW).verify(payload, hdrs)
        check("standardwebhooks verifies `hookgate sign`", True, True)
    except Exception as e:  # noqa: BLE001
        check(f"standardwebhooks verifies `hookgate sign` ({e})", False, True)

    # Ed25519 (v1a) with a key made by `cryptography`.
    url = f"{base}/in/ed"
    payload = json.dumps({"type": "user.deleted"})

    def ed_headers(key, msg_id, ts, body=payload):
        sig = base64.b64encode(key.sign(f"{msg_id}.{ts}.{body}".encode())).decode()
        return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": f"v1a,{sig}"}

    status, _ = post(url, payload.encode(), ed_headers(ED_KEY, "msg_ed_1", now()))
    check("ed25519 v1a", status, 202)
    status, a = post(url, payload.encode(), ed_headers(Ed25519PrivateKey.generate(), "msg_ed_2", now()))
    check("ed25519 wrong key", (status, code(a)), (401, "bad_signature"))
    status, a = post(url, payload.replace("deleted", "created").encode(), ed_headers(ED_KEY, "msg_ed_3", now()))
    check("ed25519 tampered body", (status, code(a)), (401, "bad_signature"))
    status, a = post(url, payload.encode(), ed_headers(ED_KEY, "msg_ed_4", now() - 600))
    check("ed25519 stale timestamp", (status, code(a)), (401, "stale_timestamp"))


def main():
    import urllib.parse  # noqa: F401  (used above through urllib)
    with tempfile.TemporaryDirectory() as tmp:
        proc, base = start_gateway(tmp)
        try:
            run(base)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    passed, failed = results.count(True), results.count(False)
    print(f"interop: {passed} passed, {failed} failed")
    sys.exit(1 if failed or not passed else 0)


if __name__ == "__main__":
    main()
