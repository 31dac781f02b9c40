"""The Celery app drumbeat is compared with: a no-op task, acks_late, a quorum queue.

Configured from the environment by bench.py: BENCH_AMQP (broker URL), BENCH_QUEUE (queue,
exchange and routing key), BENCH_BEAT_ENTRIES (beat entries, each every second).
"""
import os

from celery import Celery
from kombu import Exchange, Queue

QUEUE = os.environ.get("BENCH_QUEUE", "celery-bench")
ENTRIES = int(os.environ.get("BENCH_BEAT_ENTRIES", "0"))

app = Celery("bench", broker=os.environ.get("BENCH_AMQP", "amqp://guest:guest@127.0.0.1:5672//"))
app.conf.update(
    task_acks_late=True,
    task_ignore_result=True,
    task_queues=[
        Queue(
            QUEUE,
            Exchange(QUEUE, type="direct", durable=True),
            routing_key=QUEUE,
            queue_arguments={"x-queue-type": "quorum"},
        )
    ],
    task_default_queue=QUEUE,
    task_default_exchange=QUEUE,
    task_default_routing_key=QUEUE,
    worker_prefetch_multiplier=4,
    broker_connection_retry_on_startup=True,
    beat_schedule={
        f"e{i}": {"task": "bench.noop", "schedule": 1.0, "args": (i,)} for i in range(ENTRIES)
    },
)


@app.task(name="bench.noop")
def noop(*args, **kwargs):
    """Does nothing: the same no-op workload as drumbeat's."""
    return None
