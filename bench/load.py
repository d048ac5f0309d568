"""Load test of the real app on loopback: concurrent requests over every tab, each checked.

    python bench/load.py [--clients 8] [--requests 48] [--timeout 600]

Starts ``python app.py`` on a free 127.0.0.1 port, takes one answer per endpoint alone as the
reference, then sends ``--requests`` requests from ``--clients`` threads round-robin over the
endpoints. The endpoints are the registered tasks' (``TaskSpec.endpoint``), each called on the
task's first example with the tab's defaults for its other inputs (read from the server's API);
its answer is what the tab outputs as JSON or labels. Every answer must equal its reference (the
models are deterministic); the server's resident memory is sampled throughout. Bounded in count
and time, it stops by itself and stops the server. Prints a table: per endpoint, requests,
failures, median and max latency; then the server's memory before, peak and after; then, if
any request failed, why (the server's message, or an answer that differs).
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
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ANSWERS = {"Json", "Label"}  # the outputs that are the answer (pictures are new files each time)
VOLATILE = {"seconds", "out_dir"}  # timings and temporary paths differ on every run


@dataclass(frozen=True)
class Call:
    """One task's endpoint as the load test calls it."""

    example: Path
    files: tuple[bool | None, ...]  # per input: None not a file, else whether it takes a list
    defaults: tuple[object, ...]  # per input: the tab's default (used where it is no file)
    answers: tuple[int, ...]  # the outputs compared with the reference

    def arguments(self, handle_file) -> list:
        """The example goes to the first file input; optional ones after it keep their default
        (the Perfusion tab's AIF region)."""
        file = handle_file(self.example)
        first = next(i for i, many in enumerate(self.files) if many is not None)
        return [
            [file] if i == first and many else file if i == first else default
            for i, (many, default) in enumerate(zip(self.files, self.defaults, strict=True))
        ]

    def answer(self, outputs: tuple) -> list:
        return [_stable(outputs[i]) for i in self.answers]


def calls(api: dict) -> dict[str, Call]:
    """Endpoint → call, for every registered task, from the server's API description
    (``Client.view_api(return_format="dict")``)."""
    from workbench.tasks import list_tasks

    found = {}
    for spec in list_tasks():
        name = f"/{spec.endpoint}"
        info = api["named_endpoints"][name]
        params, returns = info["parameters"], info["returns"]
        found[name] = Call(
            example=spec.example_paths()[0],
            files=tuple(
                ("list" in p["python_type"]["type"]) if p["component"] == "File" else None
                for p in params
            ),
            defaults=tuple(p.get("parameter_default") for p in params),
            answers=tuple(i for i, r in enumerate(returns) if r["component"] in ANSWERS),
        )
    return found


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
        endpoints = calls(client.view_api(print_info=False, return_format="dict"))
        reference = {}
        for name, call in endpoints.items():
            outputs = client.predict(*call.arguments(handle_file), api_name=name)
            reference[name] = call.answer(outputs)
        before = _rss_mb(server.pid)
        threading.Thread(target=sample, daemon=True).start()
        results: dict[str, list[tuple[bool, float]]] = defaultdict(list)
        reasons: Counter[str] = Counter()
        deadline = time.monotonic() + args.timeout
        local = threading.local()

        def one(k: int) -> None:
            if time.monotonic() > deadline:
                return
            if not hasattr(local, "client"):
                local.client = Client(url, verbose=False)
            name = list(endpoints)[k % len(endpoints)]
            call = endpoints[name]
            start = time.perf_counter()
            try:
                outputs = local.client.predict(*call.arguments(handle_file), api_name=name)
                ok = call.answer(outputs) == reference[name]
                why = "" if ok else "answer differs from the one given alone"
            except Exception as err:  # a failed request is a result to count, with its reason
                ok, why = False, (str(err).strip().splitlines() or [type(err).__name__])[0]
            results[name].append((ok, time.perf_counter() - start))
            if why:
                reasons[f"{name}: {why[:120]}"] += 1

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
    if reasons:
        print("\nwhy requests failed:")
        print(markdown_table([{"reason": r, "requests": n} for r, n in reasons.most_common()]))
        raise SystemExit(1)


if __name__ == "__main__":
    main()
