"""Load test of the Space: N concurrent gradio_client requests on /recommend_item and /recommend_image.

    .venv/bin/python benchmarks/bench_space_load.py                       # the embedded sample (space/index)
    .venv/bin/python benchmarks/bench_space_load.py --data ../shared/data/hm   # the 5,000 staged photos
    FASHREC_BENCH_HM=../shared/data/hm .venv/bin/python benchmarks/bench_space_load.py   # same

Starts ``space/app.py`` in a child process (exactly as users run it), fires ``--requests`` requests at
once per endpoint from one client with as many workers, and prints failures and p50/p95 latency:

- client-side: from submit to result, including the queue wait and HTTP (photos are not downloaded);
- server-side: the handler's own duration (``FASHREC_TIMINGS_FILE``: the app appends one JSON line per
  call: preprocessing + embedding for an image, both searches (similar products, and other colours of
  the design when the model names a design focus), the captions);
- server CPU: the CPU time of the handler's thread (its work without waiting for a core; on a shared
  machine wall time minus CPU time is contention).

Goal: 0 failures and server-side p95 <= 50 ms for a recommendation. ``--concurrency`` is the Space's
``default_concurrency_limit`` (``FASHREC_CONCURRENCY``). With ``--data`` an index of that catalogue is
built once with ``fashrec embed`` (default model) into ``--cache`` and reused.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from concurrent.futures import wait
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))


def percentiles(values: list[float]) -> str:
    import numpy as np

    if not values:
        return "n/a"
    a = np.array(values) * 1000
    return f"p50 {np.percentile(a, 50):7.1f} ms   p95 {np.percentile(a, 95):7.1f} ms   max {a.max():7.1f} ms"


def build_index(data: str, cache: Path, model: str | None) -> Path:
    from fashrec import open_index

    out = cache / "index"
    if out.is_dir():
        try:
            open_index(out)
            print(f"reusing the index at {out}")
            return out
        except (ValueError, FileNotFoundError) as exc:  # e.g. made by an older fashrec: made again
            print(f"not reusing {out}: {exc}")
    print(f"embedding {data} into {out} (once) ...", flush=True)
    command = [sys.executable, "-m", "fashrec.cli", "embed", "--data", data, "--out", str(out), "--overwrite"]
    subprocess.run(command + (["--model", model] if model else []), check=True)
    return out


def fire(client, endpoint: str, requests: list[dict]) -> tuple[list[float], list[str]]:
    """Submit every request at once; client-side latency of each, and the failures."""
    jobs, starts, ends = [], [], {}
    for kwargs in requests:
        starts.append(time.perf_counter())
        job = client.submit(api_name=endpoint, **kwargs)
        job.add_done_callback(lambda j: ends.setdefault(id(j), time.perf_counter()))  # when it finishes
        jobs.append(job)
    wait(jobs, timeout=600)
    latencies, failures = [], []
    for job, start in zip(jobs, starts):
        try:
            similar, _ = job.result(timeout=0)  # the two galleries: similar products, other colours of the design
            if not similar:
                failures.append("empty gallery")
            latencies.append(ends.get(id(job), time.perf_counter()) - start)
        except Exception as exc:  # noqa: BLE001 - every failure is counted and shown
            failures.append(f"{type(exc).__name__}: {exc}")
    return latencies, failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=100, help="concurrent requests per endpoint (default 100)")
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--sequential", type=int, default=20, help="lone requests per endpoint first (default 20)")
    parser.add_argument("--concurrency", type=int, default=None, help="Space default_concurrency_limit (default: the app's)")
    parser.add_argument("--index", default=None, help="index folder to serve (default space/index)")
    parser.add_argument("--data", default=os.environ.get("FASHREC_BENCH_HM"),
                        help="catalogue to embed and serve instead (e.g. ../shared/data/hm); env FASHREC_BENCH_HM")
    parser.add_argument("--model", default=None, help="model for --data's index (default: the shipped default)")
    parser.add_argument("--cache", default=str(REPO_ROOT / "runs" / "bench-space-index"),
                        help="where the --data index is kept between runs")
    args = parser.parse_args()

    from gradio_client import handle_file

    from fashrec import open_index, pretrained
    from space.local_server import running_space

    index_dir = Path(args.index) if args.index else REPO_ROOT / "space" / "index"
    if args.data:  # one cached index per model (named after it: a new default gets a new index)
        index_dir = build_index(args.data, Path(args.cache) / Path(args.model or pretrained.DEFAULT).name, args.model)
    opened = open_index(index_dir)
    index = opened.index
    rng = random.Random(0)
    ids = index.ids
    photos = [str(opened.photos[i]) for i in rng.sample(ids, min(20, len(ids)))]

    timings = Path(tempfile.mkdtemp(prefix="fashrec-bench-")) / "timings.jsonl"
    env = {"FASHREC_INDEX": str(index_dir), "FASHREC_TIMINGS_FILE": str(timings)}
    if args.concurrency:
        env["FASHREC_CONCURRENCY"] = str(args.concurrency)
    from fashrec.index import METRICS

    metrics = list(METRICS)
    focuses = list(index.focuses)  # drawn at random per request, like the metric
    print(f"catalogue: {len(index):,} items ({index_dir}); model {(getattr(index, 'model_record', None) or {}).get('class', '?')}, "
          f"focuses {focuses}; {args.requests} concurrent requests per endpoint, "
          f"k={args.k}, concurrency limit {args.concurrency or 'app default'}")
    from gradio_client import Client

    with running_space(env=env) as url:
        # Results come back as file URLs (download_files=False): a browser fetches the photos itself, and
        # 800 downloads per burst would measure this machine's client rather than the Space.
        client = Client(url, verbose=False, max_workers=args.requests, download_files=False,
                        httpx_kwargs={"timeout": 600})
        for m in metrics:  # warm-up: first calls load code paths and caches
            client.predict(article_id=ids[0], metric=m, k=args.k, api_name="/recommend_item")
            client.predict(image=handle_file(photos[0]), metric=m, k=args.k, api_name="/recommend_image")
        # One at a time first: the latency of a lone request (no queue), client- and server-side.
        for endpoint in ("/recommend_item", "/recommend_image"):
            timings.write_text("")
            lone = []
            for _ in range(args.sequential):
                kwargs = (dict(article_id=rng.choice(ids)) if endpoint == "/recommend_item"
                          else dict(image=handle_file(rng.choice(photos))))
                t0 = time.perf_counter()
                client.predict(metric=rng.choice(metrics), focus=rng.choice(focuses), k=args.k, api_name=endpoint,
                               **kwargs)
                lone.append(time.perf_counter() - t0)
            records = [json.loads(line) for line in timings.read_text().splitlines()]
            print(f"\n{endpoint}, {args.sequential} requests one at a time:")
            print(f"  client-side  {percentiles(lone)}")
            print(f"  server-side  {percentiles([r['seconds'] for r in records])}")
            print(f"  server CPU   {percentiles([r['cpu_seconds'] for r in records if r.get('cpu_seconds') is not None])}")
        timings.write_text("")
        plans = {
            "/recommend_item": [dict(article_id=rng.choice(ids), metric=rng.choice(metrics), focus=rng.choice(focuses),
                                     k=args.k) for _ in range(args.requests)],
            "/recommend_image": [dict(image=handle_file(rng.choice(photos)), metric=rng.choice(metrics),
                                      focus=rng.choice(focuses), k=args.k) for _ in range(args.requests)],
        }
        total_failures = 0
        for endpoint, plan in plans.items():
            t0 = time.perf_counter()
            latencies, failures = fire(client, endpoint, plan)
            wall = time.perf_counter() - t0
            records = [r for r in map(json.loads, timings.read_text().splitlines())
                       if r["endpoint"] == endpoint.strip("/")]
            server = [r["seconds"] for r in records]
            total_failures += len(failures)
            print(f"\n{endpoint}, {len(plan)} requests at once: {len(plan)} in {wall:.2f} s ({len(plan) / wall:.1f} req/s), "
                  f"{len(failures)} failures")
            print(f"  client-side  {percentiles(latencies)}")
            print(f"  server-side  {percentiles(server)}   ({len(server)} handler calls)")
            print(f"  server CPU   {percentiles([r['cpu_seconds'] for r in records if r.get('cpu_seconds') is not None])}")
            for f in failures[:5]:
                print(f"  failure: {f}")
    print(f"\nload average (1, 5, 15 min) at the end: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    return 1 if total_failures else 0


if __name__ == "__main__":
    sys.exit(main())
