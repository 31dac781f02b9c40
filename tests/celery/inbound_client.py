"""A real Celery 5 client calling a drumbeat worker (docs/design.md §12, inbound).

Usage: inbound_client.py '<json spec>'. The spec: {"queue": q, "protocol": 2, "declare": bool,
"calls": [{"name", "args", "kwargs", "task_id", "countdown", "expires_in" (seconds, may be
negative: a past expiry), "ignore_result", "time_limit", "soft_time_limit", "headers" (extra
AMQP headers, typed by py-amqp), "get": seconds or null}]}. Prints one JSON line per
call: {"id", "sent_at", "result" | "error_type" + "error", "waited"}; with "declare" it first
declares the queue exactly as a Celery worker started with -Q q would, and prints
{"declared": q}.
"""

import datetime
import json
import sys
import time

from celery import Celery

BROKER = "amqp://guest:guest@127.0.0.1:5672//"


def main():
    spec = json.loads(sys.argv[1])
    app = Celery("inbound", broker=BROKER, backend="rpc://")
    app.conf.task_protocol = spec.get("protocol", 2)
    app.conf.broker_connection_retry_on_startup = False
    queue = spec["queue"]
    if spec.get("declare"):
        # What a Celery worker (-Q queue) or a client sending to a missing queue declares.
        with app.connection_for_write() as conn:
            app.amqp.queues[queue].bind(conn.default_channel).declare()
        print(json.dumps({"declared": queue}), flush=True)
    for call in spec.get("calls", []):
        options = {"queue": queue}
        for key in ("task_id", "countdown", "ignore_result", "time_limit", "soft_time_limit", "headers"):
            if call.get(key) is not None:
                options[key] = call[key]
        if call.get("expires_in") is not None:
            options["expires"] = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(
                seconds=call["expires_in"]
            )
        sent_at = time.time()
        result = app.send_task(
            call["name"], args=call.get("args"), kwargs=call.get("kwargs"), **options
        )
        out = {"id": result.id, "sent_at": sent_at}
        if call.get("get") is not None:
            started = time.monotonic()
            try:
                out["result"] = result.get(timeout=call["get"])
            except Exception as exc:  # the test asserts on the type the caller sees
                out["error_type"] = type(exc).__name__
                out["error"] = repr(exc)
            out["waited"] = time.monotonic() - started
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
