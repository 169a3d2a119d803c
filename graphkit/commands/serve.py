"""``graphkit serve``: the live risk engine over HTTP (docs/serve.md)."""

from __future__ import annotations

import ipaddress
import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from graphkit.commands.render import EXIT_FAILURE, EXIT_INVALID_INPUT, ConfigFile, fail
from graphkit.config import ConfigError, load_config


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def serve(
    run_dir: Annotated[
        Path, typer.Argument(help="Run directory (or a link such as runs/latest) to serve.")
    ],
    state: Annotated[
        Path, typer.Option("--state", help="State directory: event log and checkpoints.")
    ],
    host: Annotated[str | None, typer.Option(help="Address to bind ([serve] host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port ([serve] port).")] = None,
    config: ConfigFile = None,
    token_env: Annotated[
        str | None,
        typer.Option(help="Environment variable holding the bearer token ([serve] token_env)."),
    ] = None,
    certfile: Annotated[Path | None, typer.Option(help="TLS certificate (PEM).")] = None,
    keyfile: Annotated[Path | None, typer.Option(help="TLS private key (PEM).")] = None,
) -> None:
    """Serve drawdown decisions, live events and the alert feed for RUN_DIR; events are
    logged durably in --state. SIGHUP (or POST /v1/admin/reload) swaps in a newer run."""
    import uvicorn

    from graphkit.serve import Service, create_app

    try:
        cfg = load_config(config) if config is not None else None
    except ConfigError as exc:
        fail(str(exc), EXIT_INVALID_INPUT)
    settings = (cfg or load_config(None)).serve
    host = host or settings.host
    port = port or settings.port
    env_name = token_env or settings.token_env
    token = os.environ.get(env_name) or None
    if (certfile is None) != (keyfile is None):
        fail("--certfile and --keyfile go together", EXIT_INVALID_INPUT)
    for path in (certfile, keyfile):
        if path is not None and not path.is_file():
            fail(f"{path}: file not found", EXIT_INVALID_INPUT)
    if not (run_dir / "manifest.json").is_file() and not (state / "checkpoint.pkl").is_file():
        fail(f"{run_dir}: not a run directory (no manifest.json)", EXIT_INVALID_INPUT)
    if not _is_loopback(host) and token is None:
        fail(
            f"binding {host} (not loopback) needs a bearer token: set ${env_name}",
            EXIT_INVALID_INPUT,
        )
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    app = create_app(Service(run_dir, state, cfg), token=token)
    uvicorn.run(
        app,
        host=host,
        port=port,
        ssl_certfile=str(certfile) if certfile else None,
        ssl_keyfile=str(keyfile) if keyfile else None,
        log_config=None,
        access_log=False,
        server_header=False,
    )
    if getattr(app.state, "failure", None):
        raise typer.Exit(EXIT_FAILURE)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
