"""``fashrec embed`` end to end, this checkout against another version of fashrec, interleaved.

    git archive 3b8e337 | (mkdir -p /tmp/before && tar -x -C /tmp/before)
    nice -n 15 .venv/bin/python benchmarks/bench_embed_against.py --against /tmp/before --rounds 2

On a shared machine the load moves every figure by a factor of two; runs of the two versions taken
minutes apart cannot be compared. This runs them alternately, each in a fresh process that imports
fashrec from its own checkout (same Python, same packages), on the same photos, with each version's
default settings (threads, workers) and flip TTA on and off, and prints one row per run with the load
and the CPU seconds the run used (all its threads: what a quiet machine would have to spend).
This checkout also runs with ``--backend onnx`` when ``fashrec[onnx]`` is installed.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
DEFAULT_HM = HERE.parent / "shared" / "data" / "hm"

_RUN = """
import json, sys, tempfile, time
sys.path.insert(0, {root!r})
import fashrec
from fashrec.jobs.embed_job import embed_catalogue
assert fashrec.__file__.startswith({root!r}), fashrec.__file__
model = fashrec.from_pretrained(fashrec.pretrained.resolve({model!r})).eval()
if {flip!r} is not None:
    model.flip_tta = {flip!r}
options = {{"backend": {backend!r}}} if {backend!r} != "torch" else {{}}
with tempfile.TemporaryDirectory() as tmp:
    start, cpu = time.perf_counter(), time.process_time()
    index = embed_catalogue(model=model, data={data!r}, out=tmp + "/index", progress=False, **options)
    took, cpu = time.perf_counter() - start, time.process_time() - cpu
print(json.dumps({{"n": len(index), "seconds": took, "cpu": cpu}}))
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--against", type=Path, required=True, help="root of the other checkout (holds fashrec/)")
    parser.add_argument("--model", default="default", help="shipped name or checkpoint folder (default %(default)s)")
    parser.add_argument("--hm-dir", type=Path, default=DEFAULT_HM)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args(argv)
    if not (args.against / "fashrec" / "__init__.py").is_file():
        parser.error(f"--against {args.against}: no fashrec/ package there")
    try:
        import onnxruntime  # noqa: F401

        ours = ["torch", "onnx"]
    except ImportError:
        ours = ["torch"]
    runs = [(args.against.resolve(), "torch")] + [(HERE, backend) for backend in ours]
    print("| version | backend | flip_tta | photos/s | seconds | CPU seconds | load (1, 5, 15 min) |\n"
          "|---|---|---|---:|---:|---:|---|")
    for _ in range(args.rounds):
        for flip in (True, False):
            for root, backend in runs:
                code = _RUN.format(root=str(root), model=args.model, flip=flip, backend=backend, data=str(args.hm_dir))
                done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
                if done.returncode != 0:
                    print(done.stderr[-2000:], file=sys.stderr)
                    return 1
                result = json.loads(done.stdout.strip().splitlines()[-1])
                label = "this checkout" if root == HERE else str(root)
                print(f"| {label} | {backend} | {flip} | {result['n'] / result['seconds']:,.0f} | "
                      f"{result['seconds']:.1f} | {result['cpu']:.1f} | {'%.1f %.1f %.1f' % os.getloadavg()} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
