"""Celery side of drumbeat's benchmark; drumbeat-bench runs it and reads one JSON line.

  bench.py worker --pool prefork|threads|solo --concurrency C --tasks N --queue Q
  bench.py beat --entries 1000 --warmup 3 --window 6 --queue Q

worker: publishes N no-op tasks to a quorum queue, starts `celery worker` (acks_late), and
times the queue draining from the first task taken to the queue reading empty (polled every
10 ms with a passive declare). The last prefetched tasks (at most prefetch = 4 x concurrency)
are not waited for, which slightly favours Celery.
beat: starts `celery beat` with N entries every second and counts what reaches the queue in
a window after a warm-up; CPU and RSS of the beat process from /proc.
"""
import argparse
import json
import shutil
import os
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_secs(pid):
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / TICKS


def rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def tree(pid):
    """pid and all its descendants."""
    children = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        children.setdefault(ppid, []).append(int(p))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def ready(conn, queue):
    ch = conn.channel()
    try:
        return ch.queue_declare(queue=queue, passive=True).message_count
    finally:
        ch.close()


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        for p in tree(proc.pid):
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        proc.wait()


# Celery >= 5.5 sets up "native delayed delivery" (28 levels of queues and exchanges, shared
# by every app on the vhost) as soon as it sees a quorum queue; the bench removes them again.
DELAYED_LEVELS = 28


def delete(conn, queue):
    ch = conn.channel()
    ch.queue_delete(queue)
    ch.exchange_delete(queue)
    for i in range(DELAYED_LEVELS):
        ch.queue_delete(f"celery_delayed_{i}")
        ch.exchange_delete(f"celery_delayed_{i}")
    ch.exchange_delete("celery_delayed_delivery")
    ch.exchange_delete("celery.pidbox")
    ch.close()


def celery(args, env, log):
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "app"] + args,
        cwd=HERE,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def worker(a, env):
    from app import app, noop

    with app.connection_for_write() as conn:
        with app.producer_or_acquire() as producer:
            for i in range(a.tasks):
                noop.apply_async((i,), producer=producer)
        log = open(os.path.join(tempfile.gettempdir(), f"{a.queue}.worker.log"), "w")
        proc = celery(
            ["worker", "-P", a.pool, "-c", str(a.concurrency), "-Q", a.queue, "--loglevel=WARNING",
             "--without-gossip", "--without-mingle", "--without-heartbeat"],
            env, log,
        )
        try:
            first, peak = None, 0.0
            deadline = time.monotonic() + 300
            last_rss = 0.0
            while time.monotonic() < deadline:
                n = ready(conn, a.queue)
                now = time.monotonic()
                if first is None and n < a.tasks:
                    first = (now, n)
                if now - last_rss > 0.1:
                    peak = max(peak, sum(rss_mb(p) for p in tree(proc.pid)))
                    last_rss = now
                if n == 0 and first is not None:
                    t0, n0 = first
                    rate = n0 / max(now - t0, 1e-3)
                    break
                if proc.poll() is not None:
                    raise SystemExit("celery worker exited")
                time.sleep(0.01)
            else:
                raise SystemExit("celery worker did not drain the queue in 300 s")
        finally:
            stop(proc)
            delete(conn, a.queue)
    print(json.dumps({"rate": rate, "rss_mb": peak, "tasks": a.tasks}))


def beat(a, env):
    env = dict(env, BENCH_BEAT_ENTRIES=str(a.entries))
    os.environ.update(env)
    from app import app

    with app.connection_for_write() as conn:
        ch = conn.channel()
        for q in app.conf.task_queues:
            q.bind(ch).declare()
        ch.close()
        sched = tempfile.mkdtemp(prefix="celerybeat-")
        log = open(os.path.join(tempfile.gettempdir(), f"{a.queue}.beat.log"), "w")
        proc = celery(["beat", "-s", os.path.join(sched, "schedule"), "--loglevel=WARNING"], env, log)
        try:
            time.sleep(a.warmup)
            if proc.poll() is not None:
                raise SystemExit("celery beat exited")
            c0, cpu0, t0 = ready(conn, a.queue), cpu_secs(proc.pid), time.monotonic()
            time.sleep(a.window)
            c1, cpu1, t1 = ready(conn, a.queue), cpu_secs(proc.pid), time.monotonic()
            rss = rss_mb(proc.pid)
        finally:
            stop(proc)
            delete(conn, a.queue)
            shutil.rmtree(sched, ignore_errors=True)
    secs = t1 - t0
    print(json.dumps({"rate": (c1 - c0) / secs, "cpu": (cpu1 - cpu0) / secs * 100, "rss_mb": rss,
                      "entries": a.entries}))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("worker")
    w.add_argument("--pool", default="prefork")
    w.add_argument("--concurrency", type=int, default=2)
    w.add_argument("--tasks", type=int, default=5000)
    w.add_argument("--queue", required=True)
    b = sub.add_parser("beat")
    b.add_argument("--entries", type=int, default=1000)
    b.add_argument("--warmup", type=float, default=3)
    b.add_argument("--window", type=float, default=6)
    b.add_argument("--queue", required=True)
    a = p.parse_args()
    env = dict(os.environ, BENCH_QUEUE=a.queue)
    os.environ.update(env)
    sys.path.insert(0, HERE)
    if a.cmd == "worker":
        worker(a, env)
    else:
        beat(a, env)


if __name__ == "__main__":
    main()
