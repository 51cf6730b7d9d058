"""Re-run the paper's hyperparameter grid (section 4.1) and a few VAE betas; write a markdown table.

    python -m training.sweep --data ../shared/data/hm --out runs/sweep --table docs/sweep.md
    python -m training.sweep --data ../shared/data/hm --out runs/sweep --jobs 4      # runs in parallel processes

Every run is ``fashrec.train`` (30 epochs, seed 42, the 80/20 split of ``load_hm``) in its own folder
``OUT/<name>/``: a finished run (``metrics.json`` present) is read back, not retrained; an interrupted one
resumes from its last epoch. So re-running the command after a crash loses nothing, and the table can be
rebuilt at any time from the folders (``--table-only``).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # fashrec, when run as a script

from fashrec.models.weight_init import DEFAULT_INIT, INITS  # noqa: E402

INIT_WORDS = {"he": "He-normal weights and zero biases (`--init he`)",
              "torch": "PyTorch's default layer init (`--init torch`)"}


@dataclass(frozen=True)
class Run:
    name: str
    model: str  # "ae" or "vae"
    lr: float
    batch_size: int
    beta: float = 0.0
    paper_train: float | None = None
    paper_test: float | None = None


# The paper's table (section 4.1): reconstruction MSE of the Table 3.3 autoencoder after 30 epochs.
AE_GRID = [
    Run("ae-lr0.1-bs256", "ae", 0.1, 256, paper_train=0.0056, paper_test=0.0054),
    Run("ae-lr0.01-bs256", "ae", 0.01, 256, paper_train=0.0031, paper_test=0.0030),
    Run("ae-lr0.001-bs256", "ae", 0.001, 256, paper_train=0.0058, paper_test=0.0056),
    Run("ae-lr0.01-bs16", "ae", 0.01, 16, paper_train=0.0005, paper_test=0.0005),
    Run("ae-lr0.01-bs32", "ae", 0.01, 32, paper_train=0.0009, paper_test=0.0009),
    Run("ae-lr0.01-bs64", "ae", 0.01, 64, paper_train=0.0015, paper_test=0.0014),
    Run("ae-lr0.01-bs128", "ae", 0.01, 128, paper_train=0.0017, paper_test=0.0016),
]
# The paper reports no VAE figures, only that its reconstruction error stayed "significantly higher".
VAE_GRID = [Run(f"vae-beta{b:g}", "vae", 0.01, 16, beta=b) for b in (0.0, 0.01, 0.1, 1.0)]
GRID = AE_GRID + VAE_GRID


def run_one(run: Run, *, data: str, out: str, epochs: int, seed: int, threads: int, cache_dir: str | None,
            init: str) -> dict:
    """Train (or resume, or read back) one grid point; returns its metrics or ``{"error": ...}``."""
    folder = Path(out) / run.name
    if (folder / "metrics.json").exists():
        return finished(folder, init)
    from fashrec.training.trainer import load_tensors, make_model, train

    train_x, test_x = load_tensors(data, cache_dir=cache_dir, progress=False)
    model = make_model(run.model, seed=seed, init=init)
    try:
        return train(model, train_x, test_x, lr=run.lr, batch_size=run.batch_size, epochs=epochs, seed=seed,
                     beta=run.beta, out_dir=folder, resume=True, progress=False, threads=threads,
                     extra_args={"init": init, "data": str(data), "sweep": run.name})
    except FloatingPointError as exc:  # diverged: recorded in the table, not fatal for the sweep
        return {"error": str(exc)}


def finished(folder: Path, init: str) -> dict:
    """The metrics of a finished run, after checking it was trained with ``init`` (runs written before
    ``--init`` existed used PyTorch's defaults: "torch")."""
    args_file = folder / "training_args.json"
    used = json.loads(args_file.read_text()).get("init", "torch") if args_file.exists() else "torch"
    if used != init:
        raise SystemExit(f"error: {folder} was trained with --init {used}, not {init}: "
                         f"choose another --out for --init {init}")
    return json.loads((folder / "metrics.json").read_text())


def _fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:.4f}"


def table(results: dict[str, dict], *, command: str, epochs: int, seed: int, threads: int, init: str) -> str:
    import torch

    lines = [
        "# The paper's hyperparameter sweep, re-run",
        "",
        f"Made by `{command}` ({time.strftime('%Y-%m-%d')}, torch {torch.__version__}, "
        f"{platform.machine()}, {threads} thread(s) per run).",
        "",
        f"Every run: the Table 3.3 model (`ConvAE()`, or `ConvVAE()` of the same shape), Adam, {epochs} epochs, "
        f"seed {seed}, {INIT_WORDS[init]}, the 80/20 split of `fashrec.load_hm` (4,000 train / 1,000 test photos of the staged 5,000). "
        "MSE is per value on [0, 1] images, of the final model over each whole split in eval mode (the VAE "
        "decodes its mean). The VAE loss is MSE + beta * KL / (values per image). "
        "Paper figures: section 4.1 (it reports none for the VAE).",
        "",
        "| run | model | lr | batch | beta | paper train MSE | paper test MSE | our train MSE | our test MSE "
        "| lowest test MSE of an epoch (epoch) | train s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in GRID:
        r = results.get(run.name, {})
        if "error" in r:
            ours = "diverged", "diverged"
        else:
            ours = _fmt(r.get("train_mse")), _fmt(r.get("test_mse"))
        beta = f"{run.beta:g}" if run.model == "vae" else "–"
        seconds = f"{r['train_seconds']:.0f}" if r.get("train_seconds") else "–"
        curve = (r.get("history") or {}).get("test_mse") or []
        lowest = f"{_fmt(min(curve))} ({curve.index(min(curve)) + 1})" if curve else "–"
        lines.append(f"| `{run.name}` | {run.model.upper()} | {run.lr:g} | {run.batch_size} | {beta} | "
                     f"{_fmt(run.paper_train)} | {_fmt(run.paper_test)} | {ours[0]} | {ours[1]} | {lowest} | {seconds} |")
    lines += ["", "\"our train/test MSE\" are the final model's, as the paper's. \"lowest test MSE of an epoch\" is the "
              "best point of the per-epoch test curve, shown only to say where the curve went: with Adam at lr 0.01 "
              "the loss spikes now and then, and a run's final value depends on whether its last steps hit one. "
              "It is not a model selection (that would pick on the test split).",
              "", "\"train s\" is the training loop of that run (training steps + the per-epoch test pass), wall clock; "
              "runs of the sweep may have shared the machine's cores with each other and with other jobs."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.sweep", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="H&M source for fashrec.load_hm, or a split-tensor file")
    parser.add_argument("--out", required=True, help="folder for the runs (one subfolder each)")
    parser.add_argument("--table", default="docs/sweep.md", help="markdown file to write (default %(default)s)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--init", choices=list(INITS), default=DEFAULT_INIT,
                        help="weight init of every run (fashrec.models.weight_init; default %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (default %(default)s)")
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel processes (default %(default)s)")
    parser.add_argument("--only", default=None, help="comma-separated run names (default: all; see --list)")
    parser.add_argument("--list", action="store_true", help="print the run names and exit")
    parser.add_argument("--cache-dir", default=None, help="tensor cache folder (default: fashrec's)")
    parser.add_argument("--table-only", action="store_true", help="rebuild the table from finished runs; train nothing")
    args = parser.parse_args(argv)

    if args.list:
        for run in GRID:
            print(run.name, json.dumps({k: v for k, v in asdict(run).items() if k != "name"}))
        return 0
    names = {r.name for r in GRID}
    wanted = [r for r in GRID if not args.only or r.name in args.only.split(",")]
    unknown = set(args.only.split(",")) - names if args.only else set()
    if unknown:
        parser.error(f"unknown run(s) {sorted(unknown)}; see --list")

    results: dict[str, dict] = {}
    for run in GRID:  # whatever is already finished, for the table
        folder = Path(args.out) / run.name
        if (folder / "metrics.json").exists():
            results[run.name] = finished(folder, args.init)
    todo = [r for r in wanted if r.name not in results] if not args.table_only else []
    kwargs = dict(data=args.data, out=args.out, epochs=args.epochs, seed=args.seed, threads=args.threads,
                  cache_dir=args.cache_dir, init=args.init)
    if todo:
        from fashrec.training.trainer import load_tensors

        load_tensors(args.data, cache_dir=args.cache_dir)  # decode once, before any worker needs the cache
    if args.jobs > 1 and len(todo) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(run_one, run, **kwargs): run for run in todo}
            for future in as_completed(futures):
                results[futures[future].name] = future.result()
                _progress(futures[future], results)
    else:
        for run in todo:
            results[run.name] = run_one(run, **kwargs)
            _progress(run, results)

    command = "python -m training.sweep " + " ".join(a for a in (argv if argv is not None else sys.argv[1:]))
    text = table(results, command=command.strip(), epochs=args.epochs, seed=args.seed, threads=args.threads,
                 init=args.init)
    from fashrec.atomic import write_text_atomic

    write_text_atomic(text, args.table)
    print(text)
    return 0


def _progress(run: Run, results: dict) -> None:
    r = results[run.name]
    what = r.get("error") or f"train {r['train_mse']:.5f} test {r['test_mse']:.5f} ({r.get('train_seconds', 0):.0f} s)"
    print(f"[{run.name}] {what}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
