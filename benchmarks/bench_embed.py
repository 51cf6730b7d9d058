"""How fast does ``fashrec embed`` go, and what bounds it? Prints one table of photos/s per step.

    nice -n 15 .venv/bin/python benchmarks/bench_embed.py                      # the default model, 5,000 H&M photos
    .venv/bin/python benchmarks/bench_embed.py --model runs/candidate --model paper-ae
    .venv/bin/python benchmarks/bench_embed.py --quick                         # 1,024 photos, a smoke run

For each ``--model`` (a shipped name or a checkpoint folder; repeatable; default: the shipped default), on
the photos of ``--hm-dir``, with the job's own threads unless ``--threads`` / ``--workers`` say otherwise
(the model gets half the CPUs, the decoders one thread per CPU):

- decode alone: ``fashrec.jobs.embed_stream.decode_batches`` (``preprocess`` on the decoding threads),
  and the same on one thread;
- network alone (the model's ``network_method``: MultiTaskCNN's trunk and heads, an autoencoder's
  encoder; BatchNorm folded, one view): torch in the default layout, torch channels-last, ONNX Runtime
  (if ``fashrec[onnx]`` is installed);
- colour histogram alone (models with one), and the first implementation it replaced
  (``tests/test_colour_histogram.py``'s reference);
- every focus embedded (``fashrec.models.inference.Embedder``: network + flip TTA as set + histogram +
  read-out) per backend, with and without flip TTA; the max |difference| to ``model.embed``;
- list + shards + index write alone: ``embed_catalogue`` with the vectors already computed;
- end to end: ``embed_catalogue`` (list, decode, embed, shards, index files) into a temporary folder,
  per backend, with flip TTA as the model's config says and the other way.

Each row gives wall seconds and the CPU seconds of this process (all its threads). On a shared machine
the wall figure is bounded by the share of the CPUs the scheduler gives this process (with autogroup
scheduling, about an equal share per busy session, whatever the nice values), the CPU figure much less
so: two cores can at best do the work in CPU seconds / 2 of wall time.

Everything in tensors uses the decoded photos themselves (each batch a fresh tensor, nothing remembered).
The load average is printed on every row: the figures move with it. Speed is never a test.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_HM = Path(__file__).resolve().parents[2] / "shared" / "data" / "hm"


def load() -> str:
    return "%.1f %.1f %.1f" % os.getloadavg()


class Table:
    def __init__(self) -> None:
        print("| step | photos/s | seconds | CPU seconds | photos | load (1, 5, 15 min) |\n"
              "|---|---:|---:|---:|---:|---|", flush=True)

    def row(self, step: str, n: int, seconds: tuple[float, float]) -> None:
        wall, cpu = seconds
        print(f"| {step} | {n / wall:,.0f} | {wall:.2f} | {cpu:.2f} | {n:,} | {load()} |", flush=True)


def timed(fn, *args, **kwargs) -> tuple[float, float]:
    """Wall seconds and this process's CPU seconds (every thread) of one call."""
    start, cpu = time.perf_counter(), time.process_time()
    fn(*args, **kwargs)
    return time.perf_counter() - start, time.process_time() - cpu


def in_batches(x, batch_size: int, fn) -> None:
    for b in range(0, len(x), batch_size):
        fn(x[b:b + batch_size].clone())  # a new tensor each batch, as the job has


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", help="shipped name or checkpoint folder (repeatable; default: default)")
    parser.add_argument("--hm-dir", type=Path, default=DEFAULT_HM)
    parser.add_argument("--n", type=int, default=None, help="only the first N photos (default: all)")
    parser.add_argument("--quick", action="store_true", help="1,024 photos: a smoke run")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=None, help="the model's threads (default: the job's, half the CPUs)")
    parser.add_argument("--workers", type=int, default=None, help="decoding threads (default: the job's, one per CPU)")
    parser.add_argument("--no-e2e", action="store_true", help="skip the end-to-end runs")
    args = parser.parse_args(argv)
    n_limit = 1024 if args.quick and args.n is None else args.n

    import torch

    import fashrec
    from fashrec.jobs.embed_stream import available_cpus, decode_batches, default_threads, default_workers
    from fashrec.models.hub_model import weights_hash
    from fashrec.models.inference import Embedder, for_inference, torch_threads
    from fashrec.models.pretrained import resolve

    try:
        import onnxruntime  # noqa: F401

        backends = ["torch", "onnx"]
    except ImportError:
        backends = ["torch"]
    paths = sorted((args.hm_dir / "images").glob("*/*.jpg"))[:n_limit]
    n = len(paths)
    threads = args.threads or default_threads()
    workers = args.workers or default_workers()
    print(f"{n} photos of {args.hm_dir}, batch {args.batch_size}; model threads {threads}, decoding threads "
          f"{workers}, {available_cpus()} CPUs; torch {torch.__version__}; backends {', '.join(backends)}; "
          f"load {load()}", flush=True)
    batches = [range(b, min(n, b + args.batch_size)) for b in range(0, n, args.batch_size)]
    for name in args.model or ["default"]:
        model = fashrec.from_pretrained(resolve(name)).eval()
        tta = getattr(model, "flip_tta", None)
        print(f"\n{name}: {type(model).__name__} {model.embedding_dim}-d, focuses {', '.join(model.focuses)}, "
              f"weights {weights_hash(model)[:12]}, flip_tta={tta} in its config\n", flush=True)
        table = Table()
        cfg = model.preprocess_config
        decoded = []
        seconds = timed(lambda: decoded.extend(b.x for b in decode_batches(paths, batches, cfg, workers=workers)))
        table.row(f"decode alone, {workers} thread(s)", n, seconds)
        if workers != 1:
            table.row("decode alone, 1 thread", n, timed(lambda: [None for _ in decode_batches(paths, batches, cfg, workers=1)]))
        x = torch.cat(decoded)

        network = getattr(model, "network_method", "_focus_codes")
        with torch.no_grad(), torch_threads(threads):
            plain = for_inference(model)
            channels_last = for_inference(model, channels_last=True)
            layouts = {"torch": lambda v: getattr(plain, network)(v),
                       "torch channels-last": lambda v: getattr(channels_last, network)(
                           v.contiguous(memory_format=torch.channels_last))}
            if "onnx" in backends:
                layouts["ONNX Runtime"] = Embedder(model, backend="onnx", threads=threads).network
            for label, run in layouts.items():
                run(x[:8])  # warm-up
                table.row(f"network alone ({network}, one view), {label}", n, timed(in_batches, x, args.batch_size, run))
            if getattr(model, "colour_histogram_bins", 0):
                from tests.test_colour_histogram import reference_histogram

                table.row("colour histogram alone", n, timed(in_batches, x, args.batch_size, model.colour_histogram))
                bins, pad = model.colour_histogram_bins, float(cfg.pad_value)
                table.row("colour histogram alone, the first implementation (before)", n,
                          timed(in_batches, x, args.batch_size, lambda v: reference_histogram(v, bins, pad)))

        options = [tta, not tta] if tta is not None else [None]
        worst = 0.0
        for backend in backends[:1] if args.quick else backends:
            for flip in options:
                if flip is not None:
                    model.flip_tta = flip
                embed = Embedder(model, backend=backend, threads=threads)
                embed(x[:8])
                what = f", flip_tta={flip}" if flip is not None else ""
                table.row(f"every focus embedded, {backend}{what}", n, timed(in_batches, x, args.batch_size, embed))
                got = embed(x[:64])
                worst = max(worst, max(float((got[f] - model.embed(x[:64], focus=f)).abs().max()) for f in got))
        if tta is not None:
            model.flip_tta = tta
        table.row("list + shards + index write alone (vectors given)", n, write_alone(model, args, x, n_limit))

        if not args.no_e2e:
            for backend in backends:
                for flip in options:
                    if flip is not None:
                        model.flip_tta = flip
                    with tempfile.TemporaryDirectory(prefix="bench-embed-") as tmp:
                        from fashrec.jobs.embed_job import embed_catalogue

                        done = []
                        took = timed(lambda: done.append(embed_catalogue(
                            model=model, data=args.hm_dir, out=Path(tmp) / "index", n=n_limit,
                            batch_size=args.batch_size, workers=workers, threads=threads, backend=backend,
                            progress=False)))
                    what = f", flip_tta={flip}" if flip is not None else ""
                    table.row(f"**end to end, `fashrec embed`, {backend}{what}**", len(done[0]), took)
            if tta is not None:
                model.flip_tta = tta
        print(f"\nevery backend's vectors are within {worst:.1e} of model.embed's")
    print(f"\ndone; load {load()}")
    return 0


def write_alone(model, args, x, n_limit) -> float:
    """``embed_catalogue`` with the embedding replaced by vectors already computed: listing, shards,
    index build and files, the job's fixed costs."""
    import torch

    from fashrec.jobs import embed_stream
    from fashrec.jobs.embed_job import embed_catalogue

    with torch.no_grad():
        vectors = {f: model.embed(x[:1], focus=f).expand(args.batch_size, -1).clone() for f in model.focuses}

    def given(_model, _sources, batches, **_):
        for b in batches:
            b = list(b)
            yield embed_stream.EmbeddedBatch(b, b, {f: v[:len(b)] for f, v in vectors.items()}, [])

    real = embed_stream.embed_batches
    embed_stream.embed_batches = given
    try:
        with tempfile.TemporaryDirectory(prefix="bench-write-") as tmp:
            return timed(embed_catalogue, model=model, data=args.hm_dir, out=Path(tmp) / "index", n=n_limit,
                         batch_size=args.batch_size, progress=False)
    finally:
        embed_stream.embed_batches = real


if __name__ == "__main__":
    sys.exit(main())
