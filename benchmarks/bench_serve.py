"""A load test of ``speechlm serve`` on 127.0.0.1: throughput, latency percentiles, and that no
request fails except by the documented limits.

The server runs in this process (uvicorn on a background thread, the bundled model, one torch
thread, the default limits: 4 jobs waiting + running) unless ``--port`` names one already
running on this machine. Bounded in count and time, and only over loopback:

1. **steady**: ``--clients`` threads (more than the queue holds) each send requests back to back,
   a mix of ``/api/continue`` (``--seconds`` of new speech) and ``/api/analyze``, until
   ``--requests`` are sent or ``--time`` seconds pass. A ``503 busy`` answer is a documented
   refusal: the client waits its ``Retry-After`` (capped at 1 s) and tries again; any other
   non-200 answer, or a connection error, is a failure.
2. **vanished clients**: ``--vanish`` clients send a continuation and hang up at once; the
   server must cancel their jobs (``/api/info`` counts them) and keep serving.
3. **slow client**: one client opens an upload and stalls; others are served meanwhile, and
   the stalled one is cut off with 408 after the upload timeout.

Prints a JSON report; exits 1 if any request failed outside the limits.

    .venv/bin/python benchmarks/bench_serve.py [--clients 8] [--requests 60] [--time 90]
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import socket
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "samples" / "flite_slt_arctic_a0004.wav"
HOST = "127.0.0.1"  # loopback only


def form(fields: dict[str, str], audio: bytes) -> tuple[bytes, str]:
    b = uuid.uuid4().hex
    out = io.BytesIO()
    for k, v in fields.items():
        out.write(f'--{b}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode())
    out.write(f'--{b}\r\nContent-Disposition: form-data; name="audio"; filename="p.wav"\r\n'
              "Content-Type: audio/wav\r\n\r\n".encode() + audio + f"\r\n--{b}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={b}"


def call(port: int, path: str, body: bytes | None = None, ctype: str | None = None,
         timeout: float = 120) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("POST" if body is not None else "GET", path, body,
                     {"Content-Type": ctype} if ctype else {})
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def pct(xs: list[float], q: float) -> float | None:
    return round(float(np.percentile(xs, q)), 3) if xs else None


def steady(port: int, clients: int, max_requests: int, max_time: float, seconds: float,
           audio: bytes) -> dict:
    lock = threading.Lock()
    sent = [0]
    lat: dict[str, list[float]] = {"continue": [], "analyze": []}  # incl. busy retries
    accepted: dict[str, list[float]] = {"continue": [], "analyze": []}  # the last attempt
    statuses: dict[str, int] = {}
    failures: list[str] = []
    busy_waits = [0]
    t_end = time.monotonic() + max_time

    def client(i: int) -> None:
        k = 0
        while time.monotonic() < t_end:
            with lock:
                if sent[0] >= max_requests:
                    return
                sent[0] += 1
            op = "continue" if (i + k) % 3 else "analyze"  # two continuations per analysis
            k += 1
            fields = {"seconds": str(seconds), "seed": str(i * 1000 + k), "judge": "0"} \
                if op == "continue" else {}
            body, ctype = form(fields, audio)
            t0 = time.monotonic()
            while True:  # a 503 is the documented "busy, retry": wait and send it again
                t1 = time.monotonic()
                try:
                    status, headers, data = call(port, f"/api/{op}", body, ctype)
                except OSError as err:
                    status, headers, data = -1, {}, str(err).encode()
                with lock:
                    statuses[str(status)] = statuses.get(str(status), 0) + 1
                if status != 503 or time.monotonic() > t_end:
                    break
                with lock:
                    busy_waits[0] += 1
                time.sleep(min(1.0, float(headers.get("retry-after", "1"))))
            dt = time.monotonic() - t0
            with lock:
                if status == 200:
                    lat[op].append(dt)
                    accepted[op].append(time.monotonic() - t1)
                elif status != 503:
                    failures.append(f"{op}: {status} {data[:200]!r}")

    t0 = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    done = sum(len(v) for v in lat.values())
    return {
        "clients": clients, "wall_s": round(wall, 2), "completed": done,
        "throughput_rps": round(done / wall, 3),
        "continuations_per_s": round(len(lat["continue"]) / wall, 3),
        # from the first try, through any "busy, retry" waits, to the answer
        "latency_s": {op: {"n": len(v), "p50": pct(v, 50), "p90": pct(v, 90), "p99": pct(v, 99),
                           "max": pct(v, 100)} for op, v in lat.items()},
        # of the accepted attempt alone: queue wait + work, bounded by the queue's length
        "accepted_latency_s": {op: {"p50": pct(v, 50), "p90": pct(v, 90), "p99": pct(v, 99),
                                    "max": pct(v, 100)} for op, v in accepted.items()},
        "answers": statuses, "busy_retries": busy_waits[0], "failures": failures,
    }


def vanish(port: int, n: int, audio: bytes) -> dict:
    before = json.loads(call(port, "/api/info")[2])["queue"]
    body, ctype = form({"seconds": "5", "judge": "0", "num_samples": "2"}, audio)
    for _ in range(n):
        s = socket.create_connection((HOST, port))
        s.sendall(f"POST /api/continue HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: {ctype}\r\n"
                  f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        time.sleep(0.05)
        s.close()  # gone before the answer
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        q = json.loads(call(port, "/api/info")[2])["queue"]
        if q["waiting"] == 0 and q["running"] == 0:
            break
        time.sleep(0.2)
    after = json.loads(call(port, "/api/info")[2])["queue"]
    status = call(port, "/api/continue", *form({"seconds": "2", "judge": "0"}, audio))[0]
    return {"clients": n,
            "cancelled": after["cancelled"] - before["cancelled"],
            "ran_anyway": after["done"] - before["done"],
            "refused_busy": after["refused"] - before["refused"],
            "next_request": status}


def slow(port: int, audio: bytes) -> dict:
    body, ctype = form({"judge": "0"}, audio)
    s = socket.create_connection((HOST, port), timeout=120)
    s.sendall(f"POST /api/analyze HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: {ctype}\r\n"
              f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:100])
    t0 = time.monotonic()
    others = [call(port, "/api/analyze", *form({}, audio))[0] for _ in range(3)]
    others_s = time.monotonic() - t0
    data = b""
    while b"\r\n\r\n" not in data:
        got = s.recv(65536)
        if not got:
            break
        data += got
    s.close()
    return {"stalled_answer": int(data.split()[1]) if data else None,
            "stalled_after_s": round(time.monotonic() - t0, 2),
            "others_served_meanwhile": others, "others_s": round(others_s, 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, help="a speechlm serve already running on 127.0.0.1 "
                    "(default: start one in this process)")
    ap.add_argument("--clients", type=int, default=8, help="concurrent clients (steady phase)")
    ap.add_argument("--requests", type=int, default=60, help="requests to send at most")
    ap.add_argument("--time", type=float, default=90.0, help="seconds for the steady phase")
    ap.add_argument("--seconds", type=float, default=3.0, help="length of each continuation")
    ap.add_argument("--vanish", type=int, default=4, help="clients that hang up at once")
    args = ap.parse_args()
    if not (1 <= args.clients <= 64 and 1 <= args.requests <= 1000 and args.time <= 600):
        ap.error("keep it bounded: --clients <= 64, --requests <= 1000, --time <= 600")
    audio = SAMPLE.read_bytes()
    report: dict = {}

    def run(port: int) -> None:
        info = json.loads(call(port, "/api/info")[2])
        report["limits"] = info["limits"]
        report["steady"] = steady(port, args.clients, args.requests, args.time, args.seconds,
                                  audio)
        report["vanished_clients"] = vanish(port, args.vanish, audio)
        report["slow_client"] = slow(port, audio)
        report["queue"] = json.loads(call(port, "/api/info")[2])["queue"]

    if args.port:
        run(args.port)
    else:
        import resource

        import torch

        from speechlm.serve.app import ServeConfig, build_engine, create_app, serve_in_thread

        torch.set_num_threads(1)
        cfg = ServeConfig(upload_timeout_s=5.0)
        t0 = time.monotonic()
        app = create_app(build_engine("default", judges=False, config=cfg), cfg)
        report["load_s"] = round(time.monotonic() - t0, 2)
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        with serve_in_thread(app, HOST, 0) as url:
            run(int(url.rsplit(":", 1)[1]))
        report["peak_rss_mb"] = {"after_load": round(rss0), "after_test": round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
    st, va, sl = report["steady"], report["vanished_clients"], report["slow_client"]
    ok = (not st["failures"] and va["next_request"] == 200 and sl["stalled_answer"] == 408
          and all(x == 200 for x in sl["others_served_meanwhile"]))
    report["ok"] = ok
    print(json.dumps(report, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
