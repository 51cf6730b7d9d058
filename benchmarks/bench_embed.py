"""How fast does ``fashrec embed`` go, and what bounds it? Prints photos/s end to end and the ceilings.

    nice -n 15 .venv/bin/python benchmarks/bench_embed.py                        # default + paper-ae, 5,000 H&M photos
    nice -n 15 .venv/bin/python benchmarks/bench_embed.py --model default --n 1000 --no-e2e

For each model (``--model``, repeatable: a shipped name or a folder; ``stride2-untrained`` is the shipped
default's config with ``stem_stride=2`` and random weights, which runs exactly as fast as a trained one):

- decode alone: ``fashrec.jobs.embed_stream.decode_batches`` (``preprocess`` on --workers threads, the
  job's decoder) over the photos, and the same on one thread;
- forward alone: every focus embedded from tensors already in memory, for the model as loaded and for
  ``for_inference(model)`` (BatchNorm folded, what the job runs), with and without flip TTA where the
  model has it; the max |difference| folding makes to the vectors;
- end to end: ``embed_catalogue`` (list, decode, embed, shards, index files) into a temporary folder.

Speed is never a test; figures depend on the machine's load, printed with them.
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
    return "load %.1f %.1f %.1f" % os.getloadavg()


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:7.0f} photos/s ({seconds:6.1f} s)"


def load_model(name: str):
    import torch

    import fashrec
    from fashrec.models.pretrained import resolve

    if name == "stride2-untrained":
        config = fashrec.from_pretrained(resolve("default")).config_dict()
        torch.manual_seed(0)
        model = fashrec.MultiTaskCNN(**{k: v for k, v in config.items() if k not in
                                        ("model_class", "fashrec_version", "embedding_dim", "stem_stride")}, stem_stride=2)
        return model.eval()
    return fashrec.from_pretrained(resolve(name))


def forward_rate(model, x, batch_size: int) -> float:
    import torch

    focuses = tuple(getattr(model, "focuses", ("overall",)))
    with torch.no_grad():
        warm = torch.rand_like(x[:batch_size])  # other pixels than the timed batches: nothing remembered
        for f in focuses:
            model.embed(warm, focus=f)  # warm-up
        start = time.perf_counter()
        for b in range(0, len(x), batch_size):
            xb = x[b:b + batch_size].clone()  # a new tensor each batch, as the job has
            for f in focuses:
                model.embed(xb, focus=f)
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", help="shipped name, folder or stride2-untrained (default: default, paper-ae)")
    parser.add_argument("--hm-dir", type=Path, default=DEFAULT_HM)
    parser.add_argument("--n", type=int, default=None, help="only the first N photos (default: all)")
    parser.add_argument("--forward-n", type=int, default=1024, help="photos in the forward-alone figure (default %(default)s)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=None, help="decoding threads (default: one per CPU)")
    parser.add_argument("--no-e2e", action="store_true", help="skip the end-to-end runs")
    args = parser.parse_args(argv)

    import torch

    import fashrec
    from fashrec.jobs.embed_job import embed_catalogue
    from fashrec.jobs.embed_stream import decode_batches, default_workers
    from fashrec.models.hub_model import weights_hash
    from fashrec.models.inference import for_inference

    paths = sorted((args.hm_dir / "images").glob("*/*.jpg"))[: args.n]
    n = len(paths)
    workers = args.workers or default_workers()
    print(f"{n} photos of {args.hm_dir}, batch {args.batch_size}, {workers} decoding threads, "
          f"{torch.get_num_threads()} torch threads, {os.cpu_count()} CPUs; {load()}", flush=True)
    for name in args.model or ["default", "paper-ae"]:
        model = load_model(name)
        cfg = model.preprocess_config
        detail = f"stem_stride={getattr(model, 'stem_stride', '-')}, flip_tta={getattr(model, 'flip_tta', '-')}"
        print(f"\n{name}: {type(model).__name__} {model.embedding_dim}-d, weights {weights_hash(model)[:12]}, {detail}")
        batches = [range(b, min(n, b + args.batch_size)) for b in range(0, n, args.batch_size)]
        for threads in (workers, 1):
            start = time.perf_counter()
            for _ in decode_batches(paths, batches, cfg, workers=threads):
                pass
            print(f"  decode alone, {threads} thread(s):   {rate(n, time.perf_counter() - start)}   {load()}", flush=True)

        x = torch.rand(min(args.forward_n, n), 3, cfg.image_size, cfg.image_size)
        fast = for_inference(model)
        with torch.no_grad():
            folded = max(float((fast.embed(x[:64], focus=f) - model.embed(x[:64], focus=f)).abs().max())
                         for f in getattr(model, "focuses", ("overall",)))
        for tta in ([True, False] if hasattr(model, "flip_tta") else [None]):
            for label, m in (("as loaded", model), ("BN folded", fast)):
                if tta is not None:
                    m.flip_tta = tta
                took = forward_rate(m, x, args.batch_size)
                what = f"flip_tta={tta}" if tta is not None else ""
                print(f"  forward alone, {label} {what:<15} {rate(len(x), took)}   {load()}", flush=True)
        print(f"  folding changes the vectors by at most {folded:.2e}")

        if args.no_e2e:
            continue
        for tta in ([True, False] if hasattr(model, "flip_tta") else [None]):
            if tta is not None:
                model.flip_tta = tta
            with tempfile.TemporaryDirectory(prefix="bench-embed-") as tmp:
                start = time.perf_counter()
                index = embed_catalogue(model=model, data=args.hm_dir, out=Path(tmp) / "index", n=args.n,
                                        batch_size=args.batch_size, workers=args.workers, progress=False)
                took = time.perf_counter() - start
            what = f"flip_tta={tta}" if tta is not None else ""
            print(f"  end to end (fashrec embed) {what:<15} {rate(len(index), took)}   {load()}", flush=True)
    print(f"\ndone; {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
