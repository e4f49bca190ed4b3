"""`python -m devstack <command>`: a small registry of subcommands.

A command module registers itself with `@command("name", "help")` on a function taking the parsed args
and returning an exit code, plus an optional `arguments` hook; list the module in COMMAND_MODULES.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass

from devstack.processes import ServiceError

# Modules whose import registers commands (add e.g. "devstack.report" here).
COMMAND_MODULES: list[str] = ["devstack.stack_commands", "devstack.report", "devstack.demo"]


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    run: Callable[[argparse.Namespace], int]
    arguments: Callable[[argparse.ArgumentParser], None] | None = None


COMMANDS: dict[str, Command] = {}


def command(
    name: str, help: str, arguments: Callable[[argparse.ArgumentParser], None] | None = None
) -> Callable[[Callable[[argparse.Namespace], int]], Callable[[argparse.Namespace], int]]:
    def register(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        COMMANDS[name] = Command(name, help, run, arguments)
        return run

    return register


def build_parser() -> argparse.ArgumentParser:
    for module in COMMAND_MODULES:
        importlib.import_module(module)
    parser = argparse.ArgumentParser(prog="python -m devstack", description="The offline local stack.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join(COMMANDS) + "}")
    for cmd in COMMANDS.values():
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        if cmd.arguments:
            cmd.arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return COMMANDS[args.command].run(args)
    except ServiceError as err:
        print(f"devstack {args.command}: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"devstack {args.command}: interrupted", file=sys.stderr)
        return 130
