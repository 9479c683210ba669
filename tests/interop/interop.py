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

import discord_interactions
import nacl.encoding
import nacl.signing
import slack_sdk.signature
import standardwebhooks
import stripe
import svix.webhooks
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives import serialization
from twilio.request_validator import RequestValidator

BINARY, NODE_DIR = sys.argv[1], sys.argv[2]
PUBLIC_TWILIO_URL = "https://hooks.example.com/in/twilio"
PUBLIC_TWIML_URL = "https://hooks.example.com/in/twiml"
META_VERIFY_TOKEN = "meta-interop-verify-token"

SW_OLD = "whsec_" + base64.b64encode(b"o" * 24).decode()
SW_NEW = "whsec_" + base64.b64encode(os.urandom(32)).decode()
ED_KEY = Ed25519PrivateKey.generate()
ED_PUBLIC = "whpk_" + base64.b64encode(
    ED_KEY.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
).decode()
DISCORD_KEY = nacl.signing.SigningKey.generate()
DISCORD_PUBLIC = DISCORD_KEY.verify_key.encode(nacl.encoding.HexEncoder).decode()

SECRETS = {
    "stripe": ["whsec_interop_old", "whsec_interop_new"],
    "github": ["gh-old-secret", "gh-new-secret"],
    "slack": ["8f742231b10e8888abcd99yyyzzz85a5", "0123456789abcdef0123456789abcdef"],
    "twilio": ["old-auth-token", "new-auth-token"],
    "sw": [SW_OLD, SW_NEW],
    "svix": [SW_OLD, SW_NEW],
    "ed": [ED_PUBLIC],
    "discord": [DISCORD_PUBLIC],
    "twiml": ["twiml-auth-token"],
    "zoom": ["zoom-old-secret-token", "zoom-new-secret-token"],
    "meta": ["meta-app-secret"],
}
SCHEMES = {"stripe": "stripe", "github": "github", "slack": "slack", "twilio": "twilio",
           "sw": "standard-webhooks", "svix": "standard-webhooks", "ed": "standard-webhooks",
           "discord": "discord", "twiml": "twilio", "zoom": "zoom", "meta": "meta"}
# Each source's keys beyond id, verify and secrets.
EXTRA = {
    "twilio": [f'public_url = "{PUBLIC_TWILIO_URL}"'],
    "twiml": [f'public_url = "{PUBLIC_TWIML_URL}"',
              'response = { status = 200, content_type = "text/xml", body = "<Response/>" }'],
    "meta": [f'verify_token = "{META_VERIFY_TOKEN}"'],
}

results = []


def check(name, got, want):
    ok = got == want
    results.append(ok)
    print(f"{'ok  ' if ok else 'FAIL'} {name}: got {got}, want {want}", flush=True)


def start_gateway(tmp):
    lines = [f'data_dir = "{tmp}/data"', "[ingress]", 'listen = "127.0.0.1:0"', "[admin]", 'listen = "127.0.0.1:0"']
    for sid, secrets in SECRETS.items():
        lines += ["[[sources]]", f'id = "{sid}"', f'verify = "{SCHEMES[sid]}"', f"secrets = {json.dumps(secrets)}"]
        lines += EXTRA.get(sid, [])
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


def request(url, body=None, headers=None, method="POST"):
    """(status, content type, raw body): for answers that need not be JSON."""
    req = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers.get("Content-Type"), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read()


def post(url, body, headers):
    status, _, raw = request(url, body, headers)
    return status, json.loads(raw or b"null")


def hookgate_sign(scheme, secret, body):
    """The headers `hookgate sign` prints for a body, and what it wrote to stderr."""
    out = subprocess.run([BINARY, "sign", "--scheme", scheme, "--secret", secret], input=body, capture_output=True, check=True)
    return dict(line.split(": ", 1) for line in out.stdout.decode().strip().split("\n")), out.stderr.decode()


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

    # Each delivery its own body: the same body again is a duplicate (GitHub signs no timestamp).
    payloads = {d: '{"zen":"Keep it logically awesome.","hook_id":%d,"unicode":"\\u001B ♥"}' % n for n, d in enumerate(["d-1", "d-2"], 1)}
    for label, secret, delivery in [("new secret", "gh-new-secret", "d-1"), ("rotated-out secret", "gh-old-secret", "d-2")]:
        status, _ = post(url, payloads[delivery].encode(), {"X-Hub-Signature-256": octokit(secret, payloads[delivery]), "X-GitHub-Delivery": delivery, "X-GitHub-Event": "ping"})
        check(f"github {label}", status, 202)
    payload = payloads["d-1"]
    status, answer = post(url, payload.encode(), {"X-Hub-Signature-256": octokit("gh-new-secret", payload), "X-GitHub-Delivery": "d-forged", "X-GitHub-Event": "ping"})
    check("github: the same body under a fresh delivery id is a duplicate", (status, answer.get("duplicate")), (200, True))
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
    # Slack's handshakes: a signed url_verification is answered with its challenge, never stored;
    # an unsigned ssl_check form post gets an empty 200.
    challenge = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    body = json.dumps({"token": "Jhj5dZrVaK7ZwHHjRyZWjbDl", "challenge": challenge, "type": "url_verification"})
    for label, secret in [("new secret", SECRETS["slack"][1]), ("rotated-out secret", SECRETS["slack"][0])]:
        ts = str(now())
        sig = slack_sdk.signature.SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
        status, ctype, raw = request(url, body.encode(), {"X-Slack-Signature": sig, "X-Slack-Request-Timestamp": ts, "Content-Type": "application/json"})
        check(f"slack url_verification {label} answers the challenge", (status, ctype, json.loads(raw or b"null")), (200, "application/json", {"challenge": challenge}))
    ts = str(now())
    sig = slack_sdk.signature.SignatureVerifier("wrong-secret").generate_signature(timestamp=ts, body=body)
    status, _, raw = request(url, body.encode(), {"X-Slack-Signature": sig, "X-Slack-Request-Timestamp": ts, "Content-Type": "application/json"})
    check("slack url_verification wrong secret is refused, nothing echoed", (status, challenge.encode() in raw), (401, False))
    status, ctype, raw = request(url, b"ssl_check=1&token=Jhj5dZrVaK7ZwHHjRyZWjbDl", {"Content-Type": "application/x-www-form-urlencoded"})
    check("slack ssl_check (unsigned) gets an empty 200", (status, raw), (200, b""))
    # slack_sdk's SignatureVerifier accepts what `hookgate sign` makes.
    body = "token=x&team_id=T1&command=%2Fdeploy&text=prod"
    hdrs, _ = hookgate_sign("slack", SECRETS["slack"][1], body.encode())
    verifier = slack_sdk.signature.SignatureVerifier(SECRETS["slack"][1])
    check("slack_sdk is_valid accepts `hookgate sign`", verifier.is_valid(body, hdrs["x-slack-request-timestamp"], hdrs["x-slack-signature"]), True)
    check("slack_sdk is_valid_request accepts `hookgate sign`", verifier.is_valid_request(body, hdrs), True)

    # Twilio: form posts and JSON with bodySHA256, signed for the public URL.
    url = f"{base}/in/twilio"
    params = {"CallSid": "CA123", "From": "+14158675309", "To": "+18005551212", "Body": "hello & bye"}
    form = urllib.parse.urlencode(params).encode()
    for label, token, call in [("new token", "new-auth-token", "CA123"), ("rotated-out token", "old-auth-token", "CA124")]:
        each = dict(params, CallSid=call)
        sig = RequestValidator(token).compute_signature(PUBLIC_TWILIO_URL, each)
        status, _ = post(url, urllib.parse.urlencode(each).encode(), {"X-Twilio-Signature": sig, "Content-Type": "application/x-www-form-urlencoded"})
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
    # A source with `response` answers accepted messages (and their redeliveries) with TwiML.
    url = f"{base}/in/twiml"
    params = {"MessageSid": "SM123", "From": "+14158675309", "To": "+18005551212", "Body": "hi"}
    form = urllib.parse.urlencode(params).encode()
    sig = RequestValidator("twiml-auth-token").compute_signature(PUBLIC_TWIML_URL, params)
    form_headers = {"X-Twilio-Signature": sig, "Content-Type": "application/x-www-form-urlencoded", "I-Twilio-Idempotency-Token": "twiml-1"}
    for label in ["accepted message", "redelivery"]:
        status, ctype, raw = request(url, form, form_headers)
        check(f"twilio TwiML answer to {label}", (status, ctype, raw), (200, "text/xml", b"<Response/>"))
    sig = RequestValidator("wrong-token").compute_signature(PUBLIC_TWIML_URL, params)
    status, _, raw = request(url, form, {"X-Twilio-Signature": sig, "Content-Type": "application/x-www-form-urlencoded"})
    check("twilio TwiML source wrong token", (status, code(json.loads(raw or b"null"))), (401, "bad_signature"))

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

    # Discord: PyNaCl signs timestamp ‖ body; hookgate answers the PINGs itself.
    url = f"{base}/in/discord"

    def discord_headers(key, body, ts=None):
        ts = str(ts or now())
        sig = key.sign(ts.encode() + body).signature.hex()
        return {"X-Signature-Ed25519": sig, "X-Signature-Timestamp": ts, "Content-Type": "application/json"}

    body = b'{"type":1}'
    status, ctype, raw = request(url, body, discord_headers(DISCORD_KEY, body))
    check("discord interaction PING", (status, ctype, json.loads(raw or b"null")), (200, "application/json", {"type": 1}))
    body = b'{"version":1,"application_id":"1","type":0}'
    status, _, raw = request(url, body, discord_headers(DISCORD_KEY, body))
    check("discord webhook PING", (status, raw), (204, b""))
    body = b'{"type":1}'
    status, _, raw = request(url, body, discord_headers(nacl.signing.SigningKey.generate(), body))
    check("discord PING signed by another key", (status, code(json.loads(raw or b"null"))), (401, "bad_signature"))
    body = b'{"type":2,"id":"1100000000000000001","application_id":"1","data":{"name":"deploy"}}'
    status, _ = post(url, body, discord_headers(DISCORD_KEY, body))
    check("discord application command is an event", status, 202)
    body = b'{"type":2,"id":"1100000000000000002","application_id":"1","data":{"name":"deploy"}}'
    status, a = post(url, body, discord_headers(DISCORD_KEY, body, now() - 600))
    check("discord stale timestamp", (status, code(a)), (401, "stale_timestamp"))
    # discord-interactions' verify_key accepts what `hookgate sign --scheme discord` makes.
    seed = DISCORD_KEY.encode(nacl.encoding.HexEncoder).decode()
    body = b'{"type":1}'
    hdrs, stderr = hookgate_sign("discord", seed, body)
    check("`hookgate sign --scheme discord` prints the public key", DISCORD_PUBLIC in stderr, True)
    ok = discord_interactions.verify_key(body, hdrs["x-signature-ed25519"], hdrs["x-signature-timestamp"], DISCORD_PUBLIC)
    check("discord_interactions.verify_key accepts `hookgate sign`", ok, True)

    # Zoom: its SDK, @zoom/rivet, has no signer but judges requests as its webhook receiver does,
    # answering endpoint.url_validation itself. Both must accept what `hookgate sign` makes, and
    # hookgate must answer the validation exactly as Rivet does.
    url = f"{base}/in/zoom"

    def rivet(cases):
        out = subprocess.run(["node", "zoom_rivet.mjs"], cwd=NODE_DIR, input=json.dumps(cases), capture_output=True, text=True, check=True)
        return json.loads(out.stdout)

    def compact(value):  # as Zoom sends it, and as Rivet re-serializes it to check the signature
        return json.dumps(value, separators=(",", ":")).encode()

    validation = compact({"payload": {"plainToken": "qgg8vlvZRS6UYooatFL8Aw"}, "event_ts": now() * 1000, "event": "endpoint.url_validation"})
    event = compact({"event": "meeting.started", "event_ts": now() * 1000, "payload": {"account_id": "a1", "object": {"id": "85746065432", "uuid": "u1"}}})
    old, new = SECRETS["zoom"]
    cases = [("url_validation new secret", new, new, validation), ("url_validation rotated-out secret", old, old, validation),
             ("event", new, new, event), ("url_validation wrong secret", "zoom-wrong-secret", new, validation)]
    signed = [hookgate_sign("zoom", signer, body)[0] for _, signer, _, body in cases]
    judged = rivet([{"secret": judge, "body": body.decode(), "headers": h} for (_, _, judge, body), h in zip(cases, signed)])
    answers = [request(url, body, {**h, "Content-Type": "application/json"}) for (_, _, _, body), h in zip(cases, signed)]
    for (label, *_), r, (status, ctype, raw) in zip(cases[:2], judged, answers):
        check(f"zoom {label}: Rivet verifies `hookgate sign`", r["status"], 200)
        check(f"zoom {label}: hookgate answers as Rivet does", (status, ctype, json.loads(raw or b"null")), (200, "application/json", r["body"]))
    check("zoom event: Rivet verifies `hookgate sign`", judged[2]["status"], 200)
    check("zoom event: hookgate accepts it", answers[2][0], 202)
    check("zoom url_validation wrong secret: Rivet refuses", judged[3]["status"], 400)
    status, _, raw = answers[3]
    check("zoom url_validation wrong secret: refused, nothing echoed", (status, code(json.loads(raw or b"null")), b"qgg8vlvZRS6UYooatFL8Aw" in raw), (401, "bad_signature", False))

    # Meta: signed by Meta's WhatsApp Node SDK; the GET subscription check answered by hookgate.
    url = f"{base}/in/meta"

    def meta_sign(secret, payload):
        with tempfile.NamedTemporaryFile("wb", suffix=".json", delete=False) as f:
            f.write(payload)
        sig = subprocess.run(["node", "meta_sign.cjs", secret, f.name], cwd=NODE_DIR, capture_output=True, text=True, check=True).stdout
        os.unlink(f.name)
        return sig

    # Meta sends non-ASCII escaped, and signs those bytes.
    payload = json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {"messages": [{"from": "16315551181", "id": "wamid.ABC", "type": "text", "text": {"body": "olá ♥"}}]}}]}]}).encode()
    status, _ = post(url, payload, {"X-Hub-Signature-256": meta_sign("meta-app-secret", payload), "Content-Type": "application/json"})
    check("meta signed by the WhatsApp SDK", status, 202)
    status, a = post(url, payload, {"X-Hub-Signature-256": meta_sign("meta-wrong-secret", payload), "Content-Type": "application/json"})
    check("meta wrong secret", (status, code(a)), (401, "bad_signature"))
    hdrs, _ = hookgate_sign("meta", "meta-app-secret", payload)
    check("`hookgate sign --scheme meta` equals the WhatsApp SDK's signature", hdrs["x-hub-signature-256"], meta_sign("meta-app-secret", payload))
    query = urllib.parse.urlencode({"hub.mode": "subscribe", "hub.verify_token": META_VERIFY_TOKEN, "hub.challenge": "1158201444"})
    status, ctype, raw = request(f"{url}?{query}", method="GET")
    check("meta subscription check answers the challenge", (status, (ctype or "").split(";")[0], raw), (200, "text/plain", b"1158201444"))
    query = urllib.parse.urlencode({"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1158201444"})
    status, _, raw = request(f"{url}?{query}", method="GET")
    check("meta subscription check with a wrong verify_token: 403, nothing echoed", (status, b"1158201444" in raw), (403, False))


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
