"""The ``symnas`` command.

Subcommands register themselves in :data:`COMMANDS` as
``name -> (add_arguments(parser), run(args) -> int)``.

Example::

    symnas demo            # the main job: every algorithm on the NAS-Bench-201 table
    python -m symnas demo
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Callable, Sequence

# name -> "module:function" providing (add_arguments, run); imported lazily.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("symnas.demo", "the main job: search NAS-Bench-201's table with every algorithm"),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="symnas", description="symbolic NAS for PyTorch")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    runners: dict[str, Callable] = {}
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        mod = importlib.import_module(module)
        mod.add_arguments(p)
        runners[name] = mod.run
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    return int(runners[args.command](args) or 0)


if __name__ == "__main__":
    sys.exit(main())
