"""The Celery app of tests/tests/celery/outbound.rs: an unchanged Celery worker consuming
fires a drumbeat beat publishes with format = "celery" (docs/design.md §12).

The one task appends what the worker really received (task id, args, kwargs, the headers
Celery parsed, the drumbeat fire id header, the routing key) as a JSON line to OUTBOUND_OUT,
so the Rust test asserts on what Celery itself decoded. Configured by the environment:
OUTBOUND_QUEUE (the queue to consume, namespaced per test), OUTBOUND_OUT and
OUTBOUND_PREFETCH (worker_prefetch_multiplier, default 1; 0 means no limit).
"""

import json
import os

from celery import Celery

app = Celery("outbound_tasks", broker="amqp://guest:guest@127.0.0.1:5672//")
app.conf.update(
    task_default_queue=os.environ["OUTBOUND_QUEUE"],
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    worker_prefetch_multiplier=int(os.environ.get("OUTBOUND_PREFETCH", "1")),
    accept_content=["json"],
    worker_enable_remote_control=False,
)
OUT = os.environ["OUTBOUND_OUT"]


@app.task(name="drumbeat.outbound.record", bind=True)
def record(self, *args, **kwargs):
    r = self.request
    line = {
        "id": r.id,
        "root_id": r.root_id,
        "parent_id": r.parent_id,
        "task": self.name,
        "args": list(args),
        "kwargs": kwargs,
        "retries": r.retries,
        "eta": r.eta,
        "expires": r.expires,
        "timelimit": r.timelimit,
        "argsrepr": r.argsrepr,
        "kwargsrepr": r.kwargsrepr,
        "origin": r.origin,
        "ignore_result": r.ignore_result,
        "correlation_id": r.correlation_id,
        "fire_id": getattr(r, "x-drumbeat-fire-id", None),
        "routing_key": (r.delivery_info or {}).get("routing_key"),
    }
    with open(OUT, "a", encoding="utf-8") as f:
        f.write(json.dumps(line, default=str, ensure_ascii=False) + "\n")
