"""The default model's goal table (issue 20) from ``fashrec evaluate --json`` results, as markdown.

    python training/goal_table.py "seed 0 (shipped)=fashrec/checkpoints/multitask-cnn/eval.json" \\
        "seed 1=docs/results/multitask-cnn-seed1.json"

Each argument is ``LABEL=PATH`` of one evaluation (test split, cosine, k = 10). One row per goal of
``fashrec.training.multitask_choices.GOALS``, one column per evaluation, and whether every column meets
the goal. Nothing is typed by hand: the figures are the files'. ``--alias "LABEL:design=shape"`` reads
an older model's ``shape`` focus (which learned designs before the design focus existed) as its design
focus.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NAMES = {"product_type_name": "type P@10", "colour_group_name": "colour P@10",
         "graphical_appearance_name": "pattern P@10", "design": "design hit@10"}


def goal_rows(result: dict) -> dict[tuple[str, str], float]:
    """(focus, relevance) -> the headline figure of each model row (cosine, all queries)."""
    from fashrec.eval.retrieval import headline

    return {(r.get("focus"), r["label"]): headline(r) for r in result["retrieval"]
            if r["embedding"] == "model" and r["metric"] == "cosine" and not r.get("subset")}


def table(results: dict[str, dict], aliases: dict[str, dict[str, str]] | None = None,
          baselines: tuple[str, ...] = ()) -> str:
    from fashrec.training.multitask_choices import GOALS

    for label, result in results.items():
        if result.get("split") != "test" or result.get("k") != 10:
            raise SystemExit(f"{label}: not a test-split, k = 10 evaluation")
    scores = {label: goal_rows(result) for label, result in results.items()}
    for label, renames in (aliases or {}).items():
        for new, old in renames.items():
            scores[label].update({(new, rel): v for (focus, rel), v in list(scores[label].items()) if focus == old})
    lines = ["| focus | figure | goal | " + " | ".join(results) + " | |",
             "|---|---|---:|" + "---:|" * len(results) + "---|"]
    for (focus, relevance), goal in GOALS.items():
        values = [scores[label].get((focus, relevance)) for label in results]
        judged = [v for label, v in zip(results, values) if label not in baselines]
        met = all(v is not None and v >= goal for v in judged)
        shown = " | ".join("–" if v is None else f"{v:.3f}" for v in values)
        lines.append(f"| {focus} | {NAMES[relevance]} | {goal:.2f} | {shown} | {'met' if met else '**not met**'} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("evaluations", nargs="+", metavar="LABEL=PATH", help="a fashrec evaluate --json result")
    p.add_argument("--baseline", action="append", default=[], metavar="LABEL",
                   help="an evaluation shown for comparison, left out of the met / not met verdict (repeatable)")
    p.add_argument("--alias", action="append", default=[], metavar="LABEL:FOCUS=OLD",
                   help="read evaluation LABEL's focus OLD as FOCUS (repeatable)")
    args = p.parse_args(argv)
    aliases: dict[str, dict[str, str]] = {}
    for item in args.alias:
        label, _, rename = item.rpartition(":")
        new, _, old = rename.partition("=")
        aliases.setdefault(label, {})[new] = old
    results = {}
    for item in args.evaluations:
        label, _, path = item.rpartition("=")
        if not label:
            raise SystemExit(f"{item!r}: expected LABEL=PATH")
        results[label] = json.loads(Path(path).read_text())
    print(table(results, aliases, tuple(args.baseline)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
