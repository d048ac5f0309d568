"""Load test of the real app on loopback: concurrent requests over every tab, each checked.

    python bench/load.py [--clients 8] [--requests 48] [--timeout 600]

Starts ``python app.py`` on a free 127.0.0.1 port, takes one answer per endpoint alone as the
reference, then sends ``--requests`` requests from ``--clients`` threads round-robin over the
endpoints. Every answer must equal its reference (the models are deterministic); the server's
resident memory is sampled throughout. Bounded in count and time, it stops by itself and stops
the server. Prints a table: per endpoint, requests, failures, median and max latency; then the
server's memory before, peak and after.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EX = ROOT / "examples"

# endpoint → (arguments, index of the JSON output that must match the reference)
ENDPOINTS = {
    "/tumor_segment": (lambda h: [h(EX / "tumor_seg_phantom_1.tif")], 2),
    "/contrast_classify": (lambda h: [h(EX / "contrast_phantom_T2.png")], 4),
    "/tumor44_classify": (lambda h: [h(EX / "tumor44_phantom_meningioma_T1C+.png")], 2),
    "/hemorrhage_analyse": (lambda h: [[h(EX / "hemorrhage_phantom_subdural.dcm")]], -2),
    "/perfusion_maps": (lambda h: [h(EX / "perfusion_phantom.zip"), "osvd"], -2),
}


VOLATILE = {"seconds", "out_dir"}  # timings and temporary paths differ on every run


def _stable(answer: object) -> object:
    """The part of an answer that must not change between identical requests."""
    if isinstance(answer, dict):
        return {k: v for k, v in answer.items() if k not in VOLATILE}
    return answer


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_mb(pid: int) -> float:
    """Resident memory of the server and its children, from /proc (Linux)."""
    total = 0
    for proc in [pid, *_children(pid)]:
        try:
            for line in Path(f"/proc/{proc}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def start_server(port: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "app.py"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(180):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
            return proc
        except OSError:
            time.sleep(1)
    proc.kill()
    raise SystemExit("the app did not start within 180 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=48)
    parser.add_argument("--timeout", type=float, default=600, help="seconds for the whole run")
    args = parser.parse_args()
    from gradio_client import Client, handle_file

    from workbench.cards import markdown_table

    port = _free_port()
    server = start_server(port)
    url = f"http://127.0.0.1:{port}/"
    samples: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append(_rss_mb(server.pid))
            time.sleep(0.5)

    try:
        client = Client(url, verbose=False)
        reference = {}
        for name, (make_args, index) in ENDPOINTS.items():
            reference[name] = _stable(client.predict(*make_args(handle_file), api_name=name)[index])
        before = _rss_mb(server.pid)
        threading.Thread(target=sample, daemon=True).start()
        results: dict[str, list[tuple[bool, float]]] = defaultdict(list)
        deadline = time.monotonic() + args.timeout
        local = threading.local()

        def one(k: int) -> None:
            if time.monotonic() > deadline:
                return
            if not hasattr(local, "client"):
                local.client = Client(url, verbose=False)
            name = list(ENDPOINTS)[k % len(ENDPOINTS)]
            make_args, index = ENDPOINTS[name]
            start = time.perf_counter()
            try:
                answer = local.client.predict(*make_args(handle_file), api_name=name)[index]
                ok = _stable(answer) == reference[name]
            except Exception:  # a failed request is a result to count
                ok = False
            results[name].append((ok, time.perf_counter() - start))

        started = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            list(pool.map(one, range(args.requests)))
        elapsed = time.perf_counter() - started
        stop.set()
        after = _rss_mb(server.pid)
    finally:
        stop.set()
        server.terminate()
        server.wait(timeout=30)

    rows = [
        {
            "endpoint": name,
            "requests": len(r),
            "failed": sum(not ok for ok, _ in r),
            "median s": round(statistics.median(t for _, t in r), 2),
            "max s": round(max(t for _, t in r), 2),
        }
        for name, r in results.items()
    ]
    print(
        f"{sum(len(r) for r in results.values())} requests from {args.clients} clients "
        f"in {elapsed:.0f} s"
    )
    print(markdown_table(rows))
    print(
        f"\nserver memory: {before:.0f} MB before, {max(samples or [before]):.0f} MB peak, "
        f"{after:.0f} MB after"
    )
    if any(row["failed"] for row in rows):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
