"""The ``fashrec`` console script.

Each subcommand lives in its own module under ``fashrec/commands/`` and exposes ``HELP`` (one line),
``DESCRIPTION`` (the long ``--help`` text), ``add_arguments(parser)`` and ``run(args) -> int``.
Modules are discovered, so adding a command never edits this file; they are imported only when
needed so that ``fashrec --help`` stays fast. A module may name the extra it needs (``EXTRA = "data"``):
a missing optional package then ends the command with one line saying which ``pip install`` fixes it.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import fashrec.commands as _commands


def _command_modules() -> dict[str, str]:
    names = {}
    for info in pkgutil.iter_modules(_commands.__path__):
        if not info.name.startswith("_"):
            names[info.name.replace("_", "-")] = f"fashrec.commands.{info.name}"
    return dict(sorted(names.items()))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fashrec",
        description=(
            "fashrec: visual 'similar products' recommendations for fashion catalogues. "
            "Embed a catalogue with a model from the Hub or a folder, search it, score it, train new models."
        ),
        epilog="Run 'fashrec COMMAND --help' for a command's options.",
    )
    from fashrec.version import __version__

    parser.add_argument("--version", action="version", version=f"fashrec {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in _command_modules().items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(
            name,
            help=module.HELP,
            description=getattr(module, "DESCRIPTION", module.HELP),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(_run=module.run, _extra=getattr(module, "EXTRA", None))
    return parser


def main(argv: list[str] | None = None) -> int:
    from fashrec.atomic import DiskFullError
    from fashrec.hub.push import HubPushError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except ModuleNotFoundError as exc:  # an optional extra is not installed: say which
        from fashrec.extras import missing_extra

        error = missing_extra(exc, args._extra)
        if error is None:
            raise
        print(f"fashrec {args.command}: error: {error}", file=sys.stderr)
        return 1
    except (FileNotFoundError, ValueError, DiskFullError, HubPushError) as exc:  # user errors, a full disk, the Hub
        print(f"fashrec {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
