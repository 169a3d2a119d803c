"""Typer command groups; each module exposes ``register(app)``. ``cli.py`` wires them in."""
