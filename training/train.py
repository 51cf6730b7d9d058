"""Train the paper's autoencoder (or its VAE): ``python -m training.train --data ../shared/data/hm --out runs/paper-ae``.

A thin shell: the flags are those of ``fashrec train`` (``fashrec/commands/train.py``), the loop is
``fashrec.training.trainer.train``. ``python -m training.train --help`` explains every flag.
"""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from fashrec.commands import train as command

    parser = argparse.ArgumentParser(prog="python -m training.train", description=command.DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    command.add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return command.run(args)
    except KeyboardInterrupt:
        print("interrupted: run the same command with --resume to continue", file=sys.stderr)
        return 130
    except (FileNotFoundError, ValueError) as exc:
        print(f"python -m training.train: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
