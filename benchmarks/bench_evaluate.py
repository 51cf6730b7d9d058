"""How long does ``fashrec evaluate`` take on the 5,000 H&M photos, with a cold cache and a warm one?

    nice -n 15 .venv/bin/python benchmarks/bench_evaluate.py                      # paper-ae, then default
    nice -n 15 .venv/bin/python benchmarks/bench_evaluate.py --model paper-ae --split test-only

Each model is scored twice through the command line (``fashrec evaluate --data HM --model M --split S``,
every row it prints), with ``FASHREC_CACHE`` pointing at a fresh temporary folder:

- cold: nothing cached, neither the decoded images (``fashrec.data.tensor_cache``) nor the baselines
  (``fashrec.eval.baseline_cache``: raw and PCA neighbours, PCA fit, reconstruction errors);
- warm: the same command again: images and baselines come from the cache, the model is embedded,
  searched and clustered afresh.

``--keep-tensors`` leaves the decoded images in your own cache for the cold run (only the baselines cold).
Prints seconds per run with the load average before and after. Speed is never a test.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEFAULT_HM = Path(__file__).resolve().parents[2] / "shared" / "data" / "hm"


def load() -> str:
    return "load %.1f %.1f %.1f" % os.getloadavg()


def run(args: list[str], cache: str) -> tuple[float, str]:
    """``fashrec evaluate ARGS`` in a fresh process (imports included, as a user runs it)."""
    env = {**os.environ, "FASHREC_CACHE": cache, "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "fashrec.cli", "evaluate", *args], env=env, cwd=REPO,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    took = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"fashrec evaluate {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return took, done.stdout


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", help="shipped name or folder (default: paper-ae, default)")
    parser.add_argument("--hm-dir", type=Path, default=DEFAULT_HM)
    parser.add_argument("--split", default="test")
    parser.add_argument("--keep-tensors", action="store_true", help="cold = baselines only (images from your cache)")
    parser.add_argument("--show", action="store_true", help="print the tables of the warm run")
    args = parser.parse_args(argv)

    import fashrec
    from fashrec.data.tensor_cache import default_cache_dir
    from fashrec.models.hub_model import weights_hash

    print(f"fashrec evaluate --data {args.hm_dir} --split {args.split}; {os.cpu_count()} CPUs; {load()}", flush=True)
    for name in args.model or ["paper-ae", "default"]:
        model = fashrec.from_pretrained(fashrec.pretrained.resolve(name))
        print(f"\n{name}: {type(model).__name__} {model.embedding_dim}-d, weights {weights_hash(model)[:12]}, "
              f"stem_stride={getattr(model, 'stem_stride', '-')}", flush=True)
        with tempfile.TemporaryDirectory(prefix="bench-evaluate-") as cache:
            if args.keep_tensors:
                (Path(cache) / "tensors").symlink_to(default_cache_dir() / "tensors", target_is_directory=True)
            command = ["--data", str(args.hm_dir), "--model", name, "--split", args.split]
            for label in ("cold", "warm"):
                before = load()
                took, table = run(command, cache)
                print(f"  {label}: {took:6.1f} s   ({before} -> {load()})", flush=True)
            if args.show:
                print(table)
    print(f"\ndone; {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
