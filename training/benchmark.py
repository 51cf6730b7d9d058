"""How fast is the training loop? The paper's seed configuration, ours vs two plain loops.

    python -m training.benchmark --data ../shared/data/hm
    python -m training.benchmark --data ../shared/data/hm --threads 1,2 --memory-formats channels_last,contiguous

Rows (the paper's seed configuration: ConvAE, Adam lr 0.01, batch 16, 30 epochs, train + test loss
every epoch, on the 4,000 / 1,000 split of the 5,000 staged H&M photos):

- ``fashrec.train``: the library loop (decoded tensors resident, seeded per-epoch gathers, fused Adam,
  on-tensor loss sums, channels_last), with its per-epoch checkpoint; "loop s" is the epochs themselves
  (training steps + the test-loss pass), "total s" adds checkpoints, the final evaluation over both
  splits, the figures and the model card.
- ``tensor DataLoader``: the straightforward loop over the same resident tensor: ``DataLoader(TensorDataset)``,
  default Adam, ``loss.item()`` every step, test loss in batches of 16.
- ``JPEG DataLoader``: the plain loop that decodes and preprocesses every JPEG through a ``Dataset`` each
  epoch (``fashrec.preprocess``, ``num_workers=0``), train and test.

``--step-ab BLOCKS`` instead times single optimizer steps (median ms) of the plain step, the library's
step and a ``torch.compile``d one, interleaved in one process, and prints the compile time.

Plain loops run fewer epochs (``--tensor-epochs``, ``--plain-epochs``) and, with ``--plain-images``, fewer
photos; their time is extrapolated linearly to 30 epochs of 4,000 + 1,000 photos, and the output says so.
Timings depend on the machine's load: the load average is printed beside every row.
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path


def _load() -> str:
    try:
        return "%.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        return "n/a"


def run_ours(train_x, test_x, *, epochs: int, threads: int, channels_last: bool, out_dir: Path | None) -> dict:
    from fashrec.training.trainer import make_model, train

    model = make_model("ae", seed=42)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        metrics = train(model, train_x, test_x, lr=0.01, batch_size=16, epochs=epochs, seed=42,
                        out_dir=out_dir or tmp, progress=False, threads=threads, channels_last=channels_last)
        total = time.perf_counter() - started
    return {"loop": metrics["train_seconds"], "cpu": metrics["train_cpu_seconds"], "total": total,
            "test_mse": metrics["test_mse"], "train_mse": metrics["train_mse"], "scale": 1.0}


def run_tensor_loader(train_x, test_x, *, epochs: int, full_epochs: int, threads: int) -> dict:
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, TensorDataset

    from fashrec.models.conv_ae import ConvAE

    torch.set_num_threads(threads)
    torch.manual_seed(42)
    model = ConvAE()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    loader = DataLoader(TensorDataset(train_x), batch_size=16, shuffle=True)
    test_loader = DataLoader(TensorDataset(test_x), batch_size=16)
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(epochs):
        model.train()
        total = 0.0
        for (batch,) in loader:
            opt.zero_grad()
            loss = F.mse_loss(model(batch), batch)
            loss.backward()
            opt.step()
            total += loss.item() * len(batch)
        model.eval()
        test = 0.0
        with torch.no_grad():
            for (batch,) in test_loader:
                test += F.mse_loss(model(batch), batch).item() * len(batch)
    loop, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"loop": loop, "cpu": cpu, "total": loop, "scale": full_epochs / epochs, "test_mse": test / len(test_x)}


def step_ab(train_x, *, threads: int, blocks: int, steps_per_block: int = 50, compiled: bool = True) -> dict:
    """Median time of one optimizer step (batch 16) of each loop variant, interleaved in one process.

    Variants: ``plain`` (NCHW, default Adam, ``mse_loss(model(b), b)``), ``fashrec`` (the library's step:
    channels_last, fused Adam, gradient-layout hooks) and, with ``compiled``, ``torch.compile`` of the
    forward + loss (channels_last, fused Adam; backward through AOTAutograd). Each runs ``steps_per_block``
    steps in turn, ``blocks`` times, so all see the same load. Returns ``{name: (median_s, setup_s)}``;
    ``setup_s`` for the compiled variant is its compile time (cold or from the inductor cache).
    """
    import statistics

    import torch
    import torch.nn.functional as F

    from fashrec.training.trainer import _adam, _grad_layout_hooks, make_model

    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    nchw = train_x.contiguous()
    nhwc = train_x.permute(0, 2, 3, 1).contiguous()
    n_batches = train_x.shape[0] // 16

    def build(kind):
        model = make_model("ae", seed=42)
        if kind == "plain":
            opt = torch.optim.Adam(model.parameters(), lr=0.01)
            get, loss_fn = (lambda i: nchw[i * 16:(i + 1) * 16]), (lambda b: F.mse_loss(model(b), b))
        else:
            model.to(memory_format=torch.channels_last)
            if kind == "fashrec":
                _grad_layout_hooks(model)
            opt = _adam(model, 0.01)
            get = lambda i: nhwc[i * 16:(i + 1) * 16].permute(0, 3, 1, 2)  # noqa: E731
            loss_fn = lambda b: F.mse_loss(model(b), b)  # noqa: E731
            if kind == "compiled":
                loss_fn = torch.compile(loss_fn, dynamic=False)

        def step(i):
            batch = get(i % n_batches)
            loss = loss_fn(batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return step

    kinds = ["plain", "fashrec"] + (["compiled"] if compiled else [])
    steps, setup, times = {}, {}, {k: [] for k in kinds}
    for kind in kinds:
        started = time.perf_counter()
        steps[kind] = build(kind)
        steps[kind](0)  # the compiled variant compiles here
        setup[kind] = time.perf_counter() - started
    for _ in range(blocks):
        for kind in kinds:
            for i in range(steps_per_block):
                started = time.perf_counter()
                steps[kind](i)
                times[kind].append(time.perf_counter() - started)
    return {k: (statistics.median(times[k]), setup[k]) for k in kinds}


class _JpegDataset:
    """Decodes and preprocesses one photo per item, every time it is asked: the plain baseline."""

    def __init__(self, paths):
        self.paths = list(paths)

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        from fashrec.data.preprocess import preprocess

        return preprocess(self.paths[i])


def run_jpeg_loader(train_paths, test_paths, *, epochs: int, full_epochs: int, full_images: int,
                    threads: int) -> dict:
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader

    from fashrec.models.conv_ae import ConvAE

    torch.set_num_threads(threads)
    torch.manual_seed(42)
    model = ConvAE()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    loader = DataLoader(_JpegDataset(train_paths), batch_size=16, shuffle=True, num_workers=0)
    test_loader = DataLoader(_JpegDataset(test_paths), batch_size=16, num_workers=0)
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(epochs):
        model.train()
        for batch in loader:
            opt.zero_grad()
            loss = F.mse_loss(model(batch), batch)
            loss.backward()
            opt.step()
            loss.item()
        model.eval()
        with torch.no_grad():
            for batch in test_loader:
                F.mse_loss(model(batch), batch).item()
    loop, cpu = time.perf_counter() - started, time.process_time() - cpu
    measured_images = len(train_paths) + len(test_paths)
    return {"loop": loop, "cpu": cpu, "total": loop, "scale": full_epochs / epochs * full_images / measured_images}


def jpeg_paths(data: str, jpeg_dir: str | None) -> list[str]:
    """The photos the plain loop decodes: ``--jpeg-dir``, else ``DATA/images`` (sorted)."""
    folder = Path(jpeg_dir) if jpeg_dir else Path(data) / "images"
    if not folder.is_dir():
        return []
    return sorted(str(p) for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.benchmark", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True,
                        help="H&M source for fashrec.load_hm, or a split-tensor .safetensors file")
    parser.add_argument("--epochs", type=int, default=30, help="epochs of the seed configuration (default 30)")
    parser.add_argument("--threads", default="1", help="comma-separated torch thread counts to measure (default 1)")
    parser.add_argument("--memory-formats", default="channels_last",
                        help="layouts for fashrec.train: channels_last,contiguous (default channels_last)")
    parser.add_argument("--tensor-epochs", type=int, default=3, help="epochs of the tensor DataLoader loop (default 3)")
    parser.add_argument("--plain-epochs", type=int, default=1, help="epochs of the JPEG DataLoader loop (default 1)")
    parser.add_argument("--plain-images", type=int, default=None,
                        help="photos the JPEG loop decodes per epoch, 4:1 train:test (default: the full splits)")
    parser.add_argument("--jpeg-dir", default=None, help="where the JPEGs are (default DATA/images)")
    parser.add_argument("--skip-plain", action="store_true", help="measure fashrec.train only")
    parser.add_argument("--ab-only", action="store_true", help="only the interleaved one-epoch comparison")
    parser.add_argument("--step-ab", type=int, default=0, metavar="BLOCKS",
                        help="only time single optimizer steps: plain vs fashrec vs torch.compile, interleaved in "
                             "BLOCKS blocks of 50 steps per variant (median ms per step; e.g. 6)")
    parser.add_argument("--no-compile", action="store_true", help="--step-ab without the torch.compile variant")
    parser.add_argument("--keep", default=None, help="keep the first fashrec.train run's folder here")
    parser.add_argument("--ab-reps", type=int, default=3,
                        help="then time ONE epoch of each loop, interleaved, this many times, and report the fastest "
                             "(fairer than whole runs on a machine whose load changes; 0 = skip; default 3)")
    args = parser.parse_args(argv)

    import torch

    from fashrec.training.trainer import load_tensors

    started = time.perf_counter()
    train_x, test_x = load_tensors(args.data, progress=False)
    load_s = time.perf_counter() - started
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"python {platform.python_version()}")
    print(f"data: {len(train_x)} train + {len(test_x)} test images, loaded in {load_s:.1f} s "
          "(decoded once, then cached by fashrec.dataset_tensor)")
    print(f"seed configuration: ConvAE, Adam lr 0.01, batch 16, {args.epochs} epochs, train + test loss every epoch\n")
    if args.step_ab:
        steps_per_epoch = math.ceil(len(train_x) / 16)
        for threads in [int(t) for t in args.threads.split(",")]:
            result = step_ab(train_x, threads=threads, blocks=args.step_ab, compiled=not args.no_compile)
            plain = result["plain"][0]
            print(f"one optimizer step (batch 16), {threads} thread(s), median of {args.step_ab * 50} interleaved:")
            for name, (median, setup) in result.items():
                print(f"  {name:<9} {median * 1e3:6.2f} ms/step  x {steps_per_epoch * args.epochs} steps = "
                      f"{median * steps_per_epoch * args.epochs:6.1f} s  {plain / median:4.2f}x vs plain"
                      + (f"  (compile {setup:.1f} s)" if name == "compiled" else ""))
            print(f"  load average now: {_load()}")
        return 0
    header = (f"{'loop':<34} {'threads':>7} {'measured':>20} {'loop s':>7} {'cpu s':>7} {'total s':>8} {'img/s':>6}"
              f"  {'test MSE':>9}  load avg")
    print(header)
    print("-" * len(header))
    rows = []

    def report(name, threads, measured, result):
        loop, cpu = result["loop"] * result["scale"], result["cpu"] * result["scale"]
        total = result["total"] * result["scale"]
        ips = len(train_x) * args.epochs / loop
        mse = f"{result['test_mse']:.6f}" if "test_mse" in result and result["scale"] == 1 else "-"
        rows.append((name, threads, loop, cpu))
        print(f"{name:<34} {threads:>7} {measured:>20} {loop:>7.1f} {cpu:>7.1f} {total:>8.1f} {ips:>6.0f}  {mse:>9}"
              f"  {_load()}", flush=True)

    threads_list = [int(t) for t in args.threads.split(",")]
    keep = Path(args.keep) if args.keep else None
    for threads in threads_list if not args.ab_only else []:
        for fmt in args.memory_formats.split(","):
            result = run_ours(train_x, test_x, epochs=args.epochs, threads=threads,
                              channels_last=fmt == "channels_last", out_dir=keep)
            keep = None
            report(f"fashrec.train ({fmt})", threads, f"{args.epochs} ep", result)
        if args.skip_plain:
            continue
        result = run_tensor_loader(train_x, test_x, epochs=args.tensor_epochs, full_epochs=args.epochs,
                                   threads=threads)
        report("tensor DataLoader (extrapolated)", threads, f"{args.tensor_epochs} ep", result)
        paths = jpeg_paths(args.data, args.jpeg_dir)
        if not paths:
            print(f"JPEG DataLoader: no JPEGs under {args.jpeg_dir or Path(args.data) / 'images'}; pass --jpeg-dir")
            continue
        k = min(args.plain_images or len(paths), len(paths))
        n_train = round(k * len(train_x) / (len(train_x) + len(test_x)))
        result = run_jpeg_loader(paths[:n_train], paths[n_train:k], epochs=args.plain_epochs, full_epochs=args.epochs,
                                 full_images=len(train_x) + len(test_x), threads=threads)
        report("JPEG DataLoader (extrapolated)", threads, f"{args.plain_epochs} ep x {k} img", result)

    if args.ab_reps > 0 and not args.skip_plain:
        paths = jpeg_paths(args.data, args.jpeg_dir)
        k = min(args.plain_images or 500, len(paths))
        n_train = round(k * len(train_x) / (len(train_x) + len(test_x)))
        best: dict[str, tuple[float, float]] = {}
        for _ in range(args.ab_reps):
            for name, fn in (
                ("fashrec.train", lambda: run_ours(train_x, test_x, epochs=1, threads=threads_list[0],
                                                   channels_last=True, out_dir=None)),
                ("tensor DataLoader", lambda: run_tensor_loader(train_x, test_x, epochs=1, full_epochs=1,
                                                                threads=threads_list[0])),
                ("JPEG DataLoader", lambda: run_jpeg_loader(paths[:n_train], paths[n_train:k], epochs=1, full_epochs=1,
                                                            full_images=len(train_x) + len(test_x),
                                                            threads=threads_list[0]) if k else None),
            ):
                result = fn()
                if result is None:
                    continue
                loop, cpu = result["loop"] * result["scale"], result["cpu"] * result["scale"]
                old = best.get(name, (math.inf, math.inf))
                best[name] = (min(old[0], loop), min(old[1], cpu))
        print(f"\none epoch of each loop, interleaved {args.ab_reps} times, fastest kept, x {args.epochs} epochs "
              f"({threads_list[0]} thread(s); JPEG loop on {k} photos, scaled):")
        ours_wall, ours_cpu = best["fashrec.train"]
        for name, (loop, cpu) in best.items():
            print(f"  {name:<20} {loop * args.epochs:7.1f} s wall  {cpu * args.epochs:7.1f} s CPU"
                  + ("" if name == "fashrec.train" else f"   ours is {loop / ours_wall:.1f}x ({cpu / ours_cpu:.1f}x) faster"))
        print(f"  load average now: {_load()}")

    print("\nratios (same thread count; wall-clock loop time, and CPU time in brackets):")
    for threads in threads_list:
        ours = min((r for r in rows if r[1] == threads and r[0].startswith("fashrec")), key=lambda r: r[2], default=None)
        for name, t, loop, cpu in rows:
            if t == threads and ours and not name.startswith("fashrec"):
                print(f"  {threads} thread(s): {ours[0]} is {loop / ours[2]:.1f}x ({cpu / ours[3]:.1f}x) faster than {name}")
    print(f"\nplain loops: measured epochs/photos scaled linearly to {args.epochs} epochs of "
          f"{len(train_x)} + {len(test_x)} photos. 'cpu s' is this process's CPU time over the loop: on a busy "
          "machine it estimates what the loop takes alone (with 1 thread). load average = 1, 5, 15 min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
