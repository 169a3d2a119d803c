"""graphkit command line: a thin typer shell over the library.

Each command parses options, calls one library function and renders the result with rich.
Command groups live in ``graphkit/commands/``; this module wires them together.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="graphkit",
    help="Risk-network analytics for revolving credit: guarantee circles, related-enterprise "
    "clusters, device rings, fund-flow tracing, contagion and GNN scoring, alerts.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

COMMAND_MODULES = (
    "core",
    "alerts",
    "analytics",
    "flows",
    "scoring",
    "data",
    "generate",
    "neo4j",
    "live",
    "serve",
)

for module_name in COMMAND_MODULES:
    importlib.import_module(f"graphkit.commands.{module_name}").register(app)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
