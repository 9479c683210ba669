#!/usr/bin/env python3
"""A hookgate pull consumer in plain Python (no packages): take events, run a slow step on
each, ack what worked and nack what did not, exactly as a queue worker would.

    HOOKGATE_URL=http://127.0.0.1:8081 HOOKGATE_TOKEN=... python3 examples/worker.py uploads

`uploads` is a pull endpoint (`kind = "pull"`). A message this worker never acks (it crashed,
it was killed) comes back once its visibility timeout runs out, as its next attempt; one that
keeps failing ends in the dead letters, from where `hookgate dlq replay` sends it again.
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request

URL = os.environ.get("HOOKGATE_URL", "http://127.0.0.1:8081").rstrip("/")
TOKEN = os.environ["HOOKGATE_TOKEN"]
# Leave after this many seconds with nothing to do (0: never), and how long one receive
# waits for a message; the tests shorten both.
IDLE_EXIT = float(os.environ.get("WORKER_IDLE_EXIT", "0"))
WAIT = os.environ.get("WORKER_WAIT", "20s")


def call(endpoint, verb, body):
    """POSTs `body` to the endpoint's `messages:<verb>`; the JSON answer (a 409 is a stale
    receipt: someone else holds that message now, so there is nothing to do)."""
    req = urllib.request.Request(
        f"{URL}/api/v1/endpoints/{endpoint}/messages:{verb}",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=70) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as e:
        if e.code == 409:
            return json.load(e)
        raise


def infer(event):
    """The slow step: here, pretend to classify an image for a second."""
    time.sleep(float(os.environ.get("WORKER_STEP_SECONDS", "1")))
    if event.get("corrupt"):
        raise ValueError("cannot decode the image")
    return {"label": "cat", "confidence": 0.93}


def main(endpoint):
    idle_since = time.monotonic()
    while True:
        # Up to 10 at once, waiting (20 s) for one; each leased to us for 60 s.
        got = call(endpoint, "receive", {"max": 10, "wait": WAIT, "visibility": "60s"})
        messages = got["messages"]
        if not messages:
            if IDLE_EXIT and time.monotonic() - idle_since > IDLE_EXIT:
                return
            continue
        idle_since = time.monotonic()
        for m in messages:
            event = json.loads(m["payload"])
            try:
                result = infer(event)
            except Exception as e:  # noqa: BLE001 - any failure is a nack
                # Counted as a failed attempt: due again after 5 s, dead after max_attempts.
                call(endpoint, "nack", {"receipts": [m["receipt"]], "delay": "5s", "reason": str(e)})
                print(f"{m['event_id']} attempt {m['attempt']}: failed: {e}", flush=True)
            else:
                call(endpoint, "ack", {"receipts": [m["receipt"]]})
                print(f"{m['event_id']} attempt {m['attempt']}: {result['label']}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "uploads")
