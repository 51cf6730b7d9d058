"""Train the label-supervised MultiTaskCNN (fashrec's default embedding) and save a loadable checkpoint.

    python training/train_multitask.py ../shared/data/hm --out runs/multitask            # the shipped recipe
    python training/train_multitask.py sample --out /tmp/mt --epochs 2 --widths 8 16 32 32  # a quick look

The recipe of the shipped ``fashrec/checkpoints/multitask-cnn`` (docs/embeddings.md): white padding,
label columns product type / colour group / graphical appearance (+ product group and perceived colour
as auxiliary tasks), widths 32-64-128-256, 64-value heads, AdamW lr 2e-3, batch 128, 120 epochs, flips and
4-pixel shifts. Only the *train* split of ``fashrec.load_hm(data, seed=42, test_size=0.2)`` is used, so
``fashrec evaluate`` on the test split scores images the model never saw. About a minute on one H100; on
a CPU expect hours (use ``--epochs`` to shorten).

The folder it writes: ``config.json`` + ``model.safetensors`` (``fashrec.from_pretrained`` loads it) and
``history.json`` (per-epoch losses and train accuracies). Pass ``--evaluate`` to add ``eval.json``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FOCUS_COLUMNS = {"shape": "product_type_name", "colour": "colour_group_name", "pattern": "graphical_appearance_name"}
AUX_COLUMNS = ("product_group_name", "perceived_colour_master_name")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", help="anything fashrec.load_hm reads: an H&M folder, a saved dataset, a Hub id, 'sample'")
    p.add_argument("--out", required=True, help="folder for the checkpoint (created; files replaced atomically)")
    p.add_argument("--epochs", type=int, default=120)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--widths", type=int, nargs="+", default=[32, 64, 128, 256], help="channels per stage")
    p.add_argument("--head-dim", type=int, default=64, help="values per focus head")
    p.add_argument("--pad-value", type=float, default=1.0, help="0 = the paper's black padding, 1 = white")
    p.add_argument("--no-aux", action="store_true", help="train only the three focus columns")
    p.add_argument("--histogram-bins", type=int, default=4, help="colour histogram bins per channel (0 = none)")
    p.add_argument("--no-augment", action="store_true", help="no flips or shifts")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split-seed", type=int, default=42, help="load_hm's split seed (keep 42 to match evaluate)")
    p.add_argument("--device", default=None, help="cuda / cpu (default: cuda when available)")
    p.add_argument("--evaluate", action="store_true", help="also run fashrec.evaluate on the test split -> eval.json")
    args = p.parse_args(argv)

    import torch

    import fashrec
    from fashrec.atomic import write_json_atomic
    from fashrec.models.multitask_cnn import MultiTaskCNN
    from fashrec.training.multitask_training import train_multitask
    from fashrec.data.preprocess import PreprocessConfig

    torch.set_num_threads(min(2, torch.get_num_threads()))
    dd = fashrec.load_hm(args.data, seed=args.split_seed, test_size=0.2)
    train = dd["train"]
    columns = list(FOCUS_COLUMNS.values()) + ([] if args.no_aux else [c for c in AUX_COLUMNS if c in train.features])
    missing = [c for c in FOCUS_COLUMNS.values() if c not in train.features]
    if missing:
        p.error(f"{args.data} has no label columns {missing}: MultiTaskCNN needs product type, colour and pattern labels")
    config = PreprocessConfig(pad_value=args.pad_value)
    model = MultiTaskCNN(classes={c: train.features[c].names for c in columns}, focus_columns=FOCUS_COLUMNS,
                         widths=args.widths, head_dim=args.head_dim, colour_histogram_bins=args.histogram_bins,
                         preprocess=config)
    images = fashrec.dataset_tensor(train, config)
    labels = {c: torch.tensor(train[c]) for c in columns}
    history = train_multitask(model, images, labels, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                              flip=not args.no_augment, max_shift=0 if args.no_augment else 4, seed=args.seed,
                              device=args.device)
    out = Path(args.out)
    model.cpu().save_pretrained(out)
    write_json_atomic({"history": history, "args": vars(args)}, out / "history.json")
    print(f"saved {out} ({sum(p.numel() for p in model.parameters()):,} parameters); "
          f"last epoch: {json.dumps(history[-1])}")
    if args.evaluate:
        result = fashrec.evaluate(dd, model=model, split="test", k=10, metrics=("cosine",))
        write_json_atomic(result, out / "eval.json")
        print(fashrec.eval.evaluation.markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
