"""CUDA smoke check of training and embedding (run it where torch sees a GPU; it prints figures).

    python benchmarks/cuda_smoke.py --out /tmp/cuda-smoke

Uses only the embedded sample (``fashrec/data/hm_sample``: 800 photos, 640 train / 160 test), decoded
with ``fashrec.preprocess_batch``, so it needs neither ``../shared`` nor the ``datasets`` library. It:

1. trains the paper's seed configuration (Adam, lr 0.01, batch 16, 30 epochs, ``--ema 0.99``) on the GPU
   and prints its time, images/s and train/test MSE, beside the same run on the CPU for a few epochs;
2. checks that a run stopped after 2 epochs and resumed on the GPU ends with the same weights as an
   uninterrupted 4-epoch GPU run (cuDNN's deterministic kernels), and that a second identical run
   gives the same weights;
3. embeds the test photos on the GPU and on the CPU with the trained model and prints the largest
   difference, and checks the nearest neighbours agree.
Exit status 1 if a check fails.
"""
from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for the runs")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--cpu-epochs", type=int, default=2, help="epochs of the CPU run timed beside it")
    parser.add_argument("--device", default="cuda", help="the device under test (cpu: a dry run of the script itself)")
    args = parser.parse_args()

    import numpy as np
    import torch

    from fashrec.models.hub_model import weights_hash
    from fashrec.data.preprocess import preprocess_batch
    from fashrec.data.sample import sample_path
    from fashrec.index import SimilarityIndex
    from fashrec.training.trainer import make_model, train

    dev = args.device
    if dev == "cuda" and not torch.cuda.is_available():
        print("no CUDA GPU visible to torch: nothing to check")
        return 1
    print(f"torch {torch.__version__}, " + (torch.cuda.get_device_name(0) if dev == "cuda" else dev))
    root = sample_path()
    with open(root / "metadata.csv", newline="") as f:
        files = [root / row["file_name"] for row in csv.DictReader(f)]
    x = preprocess_batch(files)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(42))
    n_test = len(x) // 5
    train_x, test_x = x[order[n_test:]].contiguous(), x[order[:n_test]].contiguous()
    print(f"sample: {len(train_x)} train / {len(test_x)} test photos")
    out = Path(args.out)
    failures = []

    def run(name, epochs, device, **kw):
        model = make_model("ae", seed=42)
        start = time.perf_counter()
        metrics = train(model, train_x, test_x, lr=0.01, batch_size=16, epochs=epochs, seed=42, device=device,
                        out_dir=out / name, progress=False, **kw)
        wall = time.perf_counter() - start
        return model, metrics, wall

    model, m, wall = run("gpu-seed-ema", args.epochs, dev, ema_decay=0.99)
    print(f"GPU, {args.epochs} epochs, EMA 0.99: {m['train_seconds']:.1f} s of training ({wall:.1f} s with outputs), "
          f"{m['images_per_second']:.0f} images/s, train MSE {m['train_mse']:.6f}, test MSE {m['test_mse']:.6f}")
    _, mc, _ = run("cpu-short", args.cpu_epochs, "cpu", threads=None)
    print(f"CPU, {args.cpu_epochs} epochs: {mc['train_seconds']:.1f} s, {mc['images_per_second']:.0f} images/s "
          f"({torch.get_num_threads()} threads)")

    a, ma, _ = run("gpu-straight", 4, dev)
    b, mb, _ = run("gpu-again", 4, dev)
    run("gpu-split", 2, dev)
    model_r, mr, _ = run("gpu-split", 4, dev, resume=True)
    same_seed = weights_hash(a) == weights_hash(b)
    resumed = weights_hash(a) == weights_hash(model_r) and ma["history"] == mr["history"]
    print(f"GPU same seed, same weights: {same_seed}; resumed after 2 of 4 epochs equals uninterrupted: {resumed} "
          f"(test MSE {ma['test_mse']:.6f} vs {mr['test_mse']:.6f})")
    failures += [] if same_seed else ["same seed"]
    failures += [] if resumed else ["resume"]

    model.eval()
    with torch.no_grad():
        cpu = model.embed(test_x)
        gpu = model.to(dev).embed(test_x.to(dev)).cpu()
    diff = float((cpu - gpu).abs().max())
    ids = [str(i) for i in range(len(test_x))]
    nn_cpu, _ = SimilarityIndex(cpu.numpy(), ids).search(cpu.numpy()[:50], k=5, metric="cosine")
    nn_gpu, _ = SimilarityIndex(gpu.numpy(), ids).search(gpu.numpy()[:50], k=5, metric="cosine")
    agree = float((np.asarray(nn_cpu) == np.asarray(nn_gpu)).mean())
    print(f"embedding {tuple(gpu.shape)} on the GPU vs the CPU: largest difference {diff:.2e}; "
          f"top-5 cosine neighbours of 50 queries agree at {agree:.1%} of ranks")
    failures += [] if diff < 1e-4 else ["embedding"]
    print("FAILED: " + ", ".join(failures) if failures else "all checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
