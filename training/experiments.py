"""Every embedding variant of docs/embeddings.md, trained and scored the same way, one name each.

    python training/experiments.py --data scratch/hm64.safetensors --out runs/experiments            # all
    python training/experiments.py --data scratch/hm64.safetensors --only cnn-white,pca-256-white     # some
    python training/experiments.py --list                                                              # names

Protocol (the issue's): the fixed seed-42 80/20 split of ``fashrec.load_hm`` (train = first
``n_train`` rows of the data file, test = the rest); models see only the train rows. Queries are the
test images, the catalogue is all images (train + test), the query itself is excluded; P@10 and mAP@10
(``fashrec.eval.retrieval_metrics`` definitions, R = relevant catalogue items) for product type, colour group
and graphical appearance, under cosine similarity. Reconstruction MSE is per value on the test images.

``--data`` is a file from ``training/experiments.py --build-data`` (``load_hm`` + ``preprocess``, stored
as uint8 without the zero columns so it travels light); ``--device cuda`` when there is one. Results are
appended as JSON lines to ``<out>/results.jsonl``; the weights of the CNN variants named
in ``--save-weights`` go to ``<out>/<variant>.safetensors``, their config.json in its metadata ("config").
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fashrec.training.augment import as_float_images  # noqa: E402
from fashrec.eval.retrieval_metrics import average_precision_at_k, count_relevant, precision_at_k  # noqa: E402

COLUMNS = ("product_type_name", "colour_group_name", "graphical_appearance_name")
SHORT = {"product_type_name": "type", "colour_group_name": "colour", "graphical_appearance_name": "pattern"}
AUX = ("product_group_name", "perceived_colour_master_name")


# ----- data -----------------------------------------------------------------------------------------
def build_data(hm_dir: str, out: str) -> None:
    """All images of ``load_hm(hm_dir, seed=42, test_size=0.2)``: train rows then test rows, uint8."""
    import numpy as np
    from safetensors.torch import save_file

    import fashrec
    from fashrec.data.preprocess import PreprocessConfig

    dd = fashrec.load_hm(hm_dir, seed=42, test_size=0.2, progress=False)
    xs, labels = [], {c: [] for c in (*COLUMNS, *AUX)}
    names = {c: dd["train"].features[c].names for c in labels}
    for split in ("train", "test"):
        xs.append(fashrec.dataset_tensor(dd[split], PreprocessConfig()))
        for c in labels:
            labels[c] += list(dd[split][c])
    x = torch.cat(xs)
    x8 = (x * 255).round().clamp(0, 255).to(torch.uint8)
    pad = (x8 == 0).all(0).all(0)  # (64, 64) pixels that are padding in every image
    cols = (~pad).any(0).nonzero().flatten()
    lo, hi = int(cols.min()), int(cols.max()) + 1
    save_file({"x_inner": x8[..., lo:hi].contiguous(), "pad_mask": pad.to(torch.uint8),
               "n_train": torch.tensor([len(dd["train"])]),
               **{f"y_{c}": torch.tensor(v) for c, v in labels.items()}}, out)
    ids = list(dd["train"]["article_id"]) + list(dd["test"]["article_id"])
    Path(out).with_suffix(".json").write_text(json.dumps({"ids": ids, "names": names, "n_train": len(dd["train"])}))
    del np


def load_data(path: str, pad_value: float, device) -> tuple[torch.Tensor, dict, int, dict]:
    """(images uint8 (N,3,64,64) padded with ``pad_value``, labels, n_train, class names)."""
    from safetensors.torch import load_file

    d = load_file(path)
    pad = d["pad_mask"].bool()
    inner = d["x_inner"]
    cols = (~pad).any(0).nonzero().flatten()
    x = torch.full((inner.shape[0], 3, pad.shape[0], pad.shape[1]), int(round(pad_value * 255)), dtype=torch.uint8)
    x[..., int(cols.min()):int(cols.max()) + 1] = inner
    labels = {k[2:]: v.long().to(device) for k, v in d.items() if k.startswith("y_")}
    meta = json.loads(Path(path).with_suffix(".json").read_text())
    return x.to(device), labels, int(d["n_train"][0]), meta["names"]


# ----- scoring --------------------------------------------------------------------------------------
@torch.no_grad()
def retrieval_scores(emb: torch.Tensor, labels: dict, n_train: int, *, k: int = 10,
                     metric: str = "cosine") -> dict:
    """P@k and mAP@k per label column: test queries vs the whole catalogue, the query excluded."""
    emb = emb.float()
    n = emb.shape[0]
    q_idx = torch.arange(n_train, n, device=emb.device)
    if metric == "cosine":
        e = F.normalize(emb, dim=1)
        sim = e[q_idx] @ e.T
    elif metric == "euclidean":
        sim = -torch.cdist(emb[q_idx], emb)
    else:
        raise ValueError(metric)
    sim[torch.arange(len(q_idx)), q_idx] = -math.inf
    nn_idx = sim.topk(k, dim=1).indices.cpu().numpy()
    queries = q_idx.cpu().numpy()
    out = {}
    for c in COLUMNS:  # fashrec.eval.retrieval_metrics: the definitions fashrec evaluate uses
        y = labels[c].cpu().numpy()
        query, hits = y[queries], y[nn_idx]
        ap = average_precision_at_k(query, hits, k, n_relevant=count_relevant(query, y))
        out[SHORT[c]] = {"p@10": round(precision_at_k(query, hits, k).mean, 4), "map@10": round(ap.mean, 4)}
    return out


@torch.no_grad()
def embed_all(fn, x: torch.Tensor, bs: int = 500) -> torch.Tensor:
    return torch.cat([fn(as_float_images(x[i:i + bs])) for i in range(0, x.shape[0], bs)])


# ----- autoencoders ---------------------------------------------------------------------------------
def fit_autoencoder(model, x_train, *, epochs, batch_size, lr, beta=0.0, kl_warmup=0, flip=False, max_shift=0,
                    pad_value=0.0, seed=0, device="cpu"):
    from fashrec.training.augment import augment_batch

    torch.manual_seed(seed)
    gen = torch.Generator(device=device).manual_seed(seed)
    model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    n = x_train.shape[0]
    steps = n // batch_size
    for epoch in range(epochs):
        perm = torch.randperm(n, device=device, generator=gen)
        b = beta * min(1.0, (epoch + 1) / kl_warmup) if kl_warmup else beta
        for s in range(steps):
            x = as_float_images(x_train[perm[s * batch_size:(s + 1) * batch_size]])
            if flip or max_shift:
                x = augment_batch(x, pad_value=pad_value, max_shift=max_shift, flip=flip, generator=gen)
            loss = model.loss(x, beta=b)["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    model.eval()
    return model


@torch.no_grad()
def test_mse(model, x_test) -> float:
    errs = []
    for i in range(0, x_test.shape[0], 500):
        x = as_float_images(x_test[i:i + 500])
        errs.append(F.mse_loss(model.reconstruct(x), x, reduction="sum"))
    return float(sum(errs) / x_test[:, :].numel())


# ----- the variants ---------------------------------------------------------------------------------
def variants() -> dict[str, dict]:
    v: dict[str, dict] = {}
    for pad in ("zero", "white"):
        v[f"random-128-{pad}"] = {"kind": "random", "dim": 128, "pad": pad}
        v[f"raw-pixels-{pad}"] = {"kind": "raw", "pad": pad}
        v[f"histogram-{pad}"] = {"kind": "histogram", "pad": pad, "bins": 4}
        for dim in (64, 128, 256, 2048):
            v[f"pca-{dim}-{pad}"] = {"kind": "pca", "dim": dim, "pad": pad}
    v["paper-ae"] = {"kind": "ae", "channels": [16, 8], "latent_dim": None, "lr": 0.01, "batch_size": 16, "epochs": 30}
    ae = {"kind": "ae", "lr": 2e-3, "batch_size": 32, "epochs": 30}
    v["ae-32-64-128-l128"] = {**ae, "channels": [32, 64, 128], "latent_dim": 128}
    v["ae-32-64-128-l256"] = {**ae, "channels": [32, 64, 128], "latent_dim": 256}
    v["ae-32-64-128-256-l256"] = {**ae, "channels": [32, 64, 128, 256], "latent_dim": 256}
    v["ae-32-64-128-l256-white"] = {**ae, "channels": [32, 64, 128], "latent_dim": 256, "pad": "white"}
    v["ae-32-64-128-l256-white-aug"] = {**ae, "channels": [32, 64, 128], "latent_dim": 256, "pad": "white",
                                        "flip": True, "max_shift": 4}
    v["ae-32-64-128-l128-linear"] = {**ae, "channels": [32, 64, 128], "latent_dim": 128, "linear_code": True}
    v["ae-32-64-128-l128-linear-white-aug"] = {**ae, "channels": [32, 64, 128], "latent_dim": 128, "linear_code": True,
                                               "pad": "white", "flip": True, "max_shift": 4}
    for arch, spec in (("paper", {"channels": [16, 8], "latent_dim": None}),
                       ("32-64-128-l128", {"channels": [32, 64, 128], "latent_dim": 128})):
        for beta in (0.0, 1e-3, 1e-2, 1e-1, 1.0):
            v[f"vae-{arch}-beta{beta:g}"] = {"kind": "vae", **spec, "beta": beta, "lr": 2e-3, "batch_size": 32,
                                             "epochs": 30}
        for beta in (1e-1, 1.0):
            v[f"vae-{arch}-beta{beta:g}-warmup"] = {"kind": "vae", **spec, "beta": beta, "lr": 2e-3, "batch_size": 32,
                                                    "epochs": 30, "kl_warmup": 10}
    cnn = {"kind": "cnn", "widths": [32, 64, 128, 256], "head_dim": 64, "epochs": 30, "lr": 2e-3, "batch_size": 128,
           "flip": True, "max_shift": 4, "pad": "zero", "aux": False}
    v["cnn-zero"] = dict(cnn)
    v["cnn-white"] = {**cnn, "pad": "white"}
    v["cnn-white-noaug"] = {**cnn, "pad": "white", "flip": False, "max_shift": 0}
    v["cnn-white-aux"] = {**cnn, "pad": "white", "aux": True}
    v["cnn-white-small"] = {**cnn, "pad": "white", "widths": [32, 64, 128, 192]}
    v["cnn-white-60ep"] = {**cnn, "pad": "white", "epochs": 60}
    v["cnn-white-aux-60ep"] = {**cnn, "pad": "white", "aux": True, "epochs": 60}
    v["cnn-zero-aux-60ep"] = {**cnn, "aux": True, "epochs": 60}
    v["cnn-white-aux-small-60ep"] = {**cnn, "pad": "white", "aux": True, "epochs": 60, "widths": [32, 64, 128, 192]}
    v["cnn-white-aux-120ep"] = {**cnn, "pad": "white", "aux": True, "epochs": 120}
    # the learned models first: they matter most if a run is cut short
    return {k: v[k] for k in sorted(v, key=lambda k: {"cnn": 0, "ae": 2, "vae": 3}.get(v[k]["kind"], 1))}


def run_variant(name: str, spec: dict, data_path: str, device, cache: dict) -> list[dict]:
    """Train (if needed) and score one variant; returns result rows (several for a multi-focus model)."""
    pad = spec.get("pad", "zero")
    pad_value = 1.0 if pad == "white" else 0.0
    if pad not in cache:
        cache[pad] = load_data(data_path, pad_value, device)
    x, labels, n_train, names = cache[pad]
    x_train = x[:n_train]
    kind = spec["kind"]
    rows = []
    t0 = time.time()

    def row(emb, **extra):
        return {"variant": name, "kind": kind, "pad": pad, "dim": int(emb.shape[1]),
                "cosine": retrieval_scores(emb, labels, n_train), **extra}

    if kind == "random":
        g = torch.Generator(device="cpu").manual_seed(0)
        rows.append(row(torch.randn(x.shape[0], spec["dim"], generator=g).to(device)))
    elif kind == "raw":
        emb = embed_all(lambda b: b.reshape(b.shape[0], -1), x)
        rows.append(row(emb, euclidean=retrieval_scores(emb, labels, n_train, metric="euclidean")))
    elif kind == "histogram":
        from fashrec.models.multitask_cnn import MultiTaskCNN

        m = MultiTaskCNN(classes={c: names[c] for c in COLUMNS}, colour_histogram_bins=spec["bins"],
                         preprocess={"pad_value": pad_value}).to(device)
        rows.append(row(embed_all(m.colour_histogram, x)))
    elif kind == "pca":
        flat = embed_all(lambda b: b.reshape(b.shape[0], -1), x)
        mean = flat[:n_train].mean(0)
        if ("pca", pad) not in cache:  # exact PCA of the train images, shared by every dim
            cache[("pca", pad)] = torch.linalg.svd(flat[:n_train] - mean, full_matrices=False).Vh
        v = cache[("pca", pad)][:spec["dim"]].T
        z = (flat - mean) @ v
        recon = z[n_train:] @ v.T + mean
        mse = float(F.mse_loss(recon, flat[n_train:]))
        rows.append(row(z, mse=round(mse, 5), euclidean=retrieval_scores(z, labels, n_train, metric="euclidean")))
    elif kind in ("ae", "vae"):
        from fashrec.models.conv_ae import ConvAE
        from fashrec.models.conv_vae import ConvVAE

        cls = ConvAE if kind == "ae" else ConvVAE
        model = cls(channels=spec["channels"], latent_dim=spec["latent_dim"], preprocess={"pad_value": pad_value})
        if kind == "ae" and spec["latent_dim"] is not None and not spec.get("linear_code"):
            # The "ae-*-l*" rows were measured when ConvAE's bottleneck ended in a Sigmoid, which saturates
            # within ~20 steps (every code equal; the decoder learns the mean image). ConvAE's code is linear
            # now (the "-linear" rows); re-create the old bottleneck to reproduce those rows.
            model.to_code.append(torch.nn.Sigmoid())
        fit_autoencoder(model, x_train, epochs=spec["epochs"], batch_size=spec["batch_size"], lr=spec["lr"],
                        beta=spec.get("beta", 0.0), kl_warmup=spec.get("kl_warmup", 0), flip=spec.get("flip", False),
                        max_shift=spec.get("max_shift", 0), pad_value=pad_value, device=device)
        emb = embed_all(lambda b: model.embed(b), x)
        extra = {"mse": round(test_mse(model, x[n_train:]), 5), "beta": spec.get("beta")}
        if kind == "vae":
            with torch.no_grad():
                mu, logvar = zip(*(model.encode(as_float_images(x[n_train + i:n_train + i + 500]))
                                   for i in range(0, x.shape[0] - n_train, 500)))
                mu, logvar = torch.cat(mu).flatten(1), torch.cat(logvar).flatten(1)
                kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp())
                extra["kl_per_image"] = round(float(kl.sum(1).mean()), 2)
                extra["active_units"] = int((mu.var(0) > 0.01).sum())
        rows.append(row(emb, euclidean=retrieval_scores(emb, labels, n_train, metric="euclidean"), **extra))
    elif kind == "cnn":
        from fashrec.models.multitask_cnn import MultiTaskCNN
        from fashrec.training.multitask_training import train_multitask

        cols = (*COLUMNS, *AUX) if spec["aux"] else COLUMNS
        model = MultiTaskCNN(classes={c: names[c] for c in cols}, widths=spec["widths"], head_dim=spec["head_dim"],
                             colour_histogram_bins=4, preprocess={"pad_value": pad_value})
        hist = train_multitask(model, x_train, {c: labels[c][:n_train] for c in cols}, epochs=spec["epochs"],
                               batch_size=spec["batch_size"], lr=spec["lr"], flip=spec["flip"],
                               max_shift=spec["max_shift"], device=device, progress=False,
                               colour_jitter_p=0.0)["history"]  # these variants predate colour jitter
        with torch.no_grad():
            acc = {}
            for c in COLUMNS:
                pred = torch.cat([model(as_float_images(x[i:i + 500]))[c].argmax(1)
                                  for i in range(n_train, x.shape[0], 500)])
                acc[SHORT[c]] = round(float((pred == labels[c][n_train:]).float().mean()), 4)
        params = sum(p.numel() for p in model.parameters())
        for hw in (0.0, 0.5, 1.0, 2.0):
            model.histogram_weight = hw
            for focus in model.focuses:
                if hw and focus not in ("overall", "colour"):
                    continue
                emb = embed_all(lambda b: model.embed(b, focus=focus), x)
                rows.append(row(emb, focus=focus, histogram_weight=hw, test_accuracy=acc, params=params,
                                final_train={k[len("train_"):]: v[-1] for k, v in hist.items()
                                             if k.startswith("train_")}))
        model.histogram_weight = 1.0
        for weights in ({"shape": 1.0, "colour": 1.0, "pattern": 0.5}, {"shape": 1.0, "colour": 0.75, "pattern": 0.5},
                        {"shape": 1.0, "colour": 1.25, "pattern": 0.5}, {"shape": 1.0, "colour": 1.0, "pattern": 0.0}):
            model.overall_weights = dict(weights)
            emb = embed_all(lambda b: model.embed(b, focus="overall"), x)
            rows.append(row(emb, focus="overall", histogram_weight=1.0, overall_weights=weights, test_accuracy=acc,
                            params=params))
        model.overall_weights = {f: 1.0 for f in model.focus_columns}
        # the shipped representation: each focus = sqrt of its column's predicted class distribution
        shipped = MultiTaskCNN(**{k: v for k, v in model.config_dict().items()
                                  if k not in ("model_class", "fashrec_version", "embedding_dim")}
                               | {"representation": "probabilities", "histogram_weight": 0.5}).to(device)
        shipped.load_state_dict(model.state_dict())
        shipped.eval()
        for focus in shipped.focuses:
            emb = embed_all(lambda b: shipped.embed(b, focus=focus), x)
            rows.append(row(emb, focus=focus, histogram_weight=0.5, representation="probabilities",
                            test_accuracy=acc, params=params))
        model.histogram_weight = 1.0
        cache.setdefault("_cnn_weights", {})[name] = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        cache.setdefault("_cnn_configs", {})[name] = model.config_dict()
    else:
        raise ValueError(kind)
    for r in rows:
        r["seconds"] = round(time.time() - t0, 1)
        r["spec"] = spec
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="scratch/hm64.safetensors", help="file made by --build-data")
    p.add_argument("--build-data", metavar="HM_DIR", help="make --data from an H&M folder and exit")
    p.add_argument("--out", default="runs/experiments", help="folder for results.jsonl and CNN weights")
    p.add_argument("--only", default="", help="comma-separated variant names (default: all)")
    p.add_argument("--skip", default="", help="comma-separated variant-name prefixes to skip")
    p.add_argument("--save-weights", default="cnn-white,cnn-white-aux-60ep,cnn-zero-aux-60ep,cnn-white-aux-small-60ep,"
                                             "cnn-white-aux-120ep,cnn-white-60ep",
                   help="comma-separated CNN variants whose weights (+ config) are saved to --out")
    p.add_argument("--list", action="store_true", help="print the variant names and exit")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--epochs-scale", type=float, default=1.0, help="multiply every epoch count (quick checks)")
    p.add_argument("--limit", type=int, default=0, help="use only this many train and test rows (quick checks)")
    args = p.parse_args(argv)
    if args.build_data:
        build_data(args.build_data, args.data)
        return 0
    table = variants()
    if args.list:
        print("\n".join(table))
        return 0
    names = [n for n in args.only.split(",") if n] or list(table)
    unknown = [n for n in names if n not in table]
    if unknown:
        p.error(f"unknown variants {unknown}; see --list")
    skip = [s for s in args.skip.split(",") if s]
    names = [n for n in names if not any(n.startswith(s) for s in skip)]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.backends.cudnn.benchmark = True
    cache: dict = {}
    for name in names:
        spec = dict(table[name])
        if "epochs" in spec:
            spec["epochs"] = max(1, round(spec["epochs"] * args.epochs_scale))
        if args.limit:
            for pad in ("zero", "white"):
                if pad not in cache:
                    x, labels, n_train, nm = load_data(args.data, 1.0 if pad == "white" else 0.0, args.device)
                    keep = torch.cat([torch.arange(args.limit), n_train + torch.arange(args.limit // 4)]).to(args.device)
                    cache[pad] = (x[keep], {c: y[keep] for c, y in labels.items()}, args.limit, nm)
        rows = run_variant(name, spec, args.data, args.device, cache)
        with open(out / "results.jsonl", "a") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
        for r in rows:
            s = r["cosine"]
            print(f"{name:34s} {r.get('focus', ''):8s} hw={r.get('histogram_weight', '')!s:4s} dim={r['dim']:5d} "
                  f"type {s['type']['p@10']:.3f} colour {s['colour']['p@10']:.3f} pattern {s['pattern']['p@10']:.3f} "
                  f"mse={r.get('mse', '')} {r['seconds']}s", flush=True)
        weights = cache.pop("_cnn_weights", {})
        for variant, state in weights.items():
            if variant in args.save_weights.split(","):
                from safetensors.torch import save_file

                save_file(state, str(out / f"{variant}.safetensors"),
                          metadata={"config": json.dumps(cache["_cnn_configs"][variant])})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
