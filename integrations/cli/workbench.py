"""`integrations workbench`: serve the mapping workbench (Streamlit) on 127.0.0.1.

Streamlit has no log-in of its own, so the workbench listens on loopback unless told otherwise,
and refuses any other address unless INTEGRATIONS_WORKBENCH_PASSWORD is set (the app then asks
for it). To share it, keep it on loopback behind an authenticating reverse proxy.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click

from integrations.errors import UsageError

PASSWORD_ENV = "INTEGRATIONS_WORKBENCH_PASSWORD"


def app_path() -> Path:
    """The Streamlit script: workbench/app.py of the installed (or checked-out) project."""
    import workbench

    return Path(workbench.__file__).resolve().parent / "app.py"


def is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def streamlit_command(port: int, host: str) -> list[str]:
    return [sys.executable, "-m", "streamlit", "run", str(app_path()), "--server.port", str(port),
            "--server.address", host, "--server.headless", "true", "--browser.gatherUsageStats", "false",
            "--global.developmentMode", "false"]


@click.command(name="workbench")
@click.option("--port", default=8501, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help=f"Address to listen on; anything but loopback needs {PASSWORD_ENV}.")
@click.option("--db", "db", type=click.Path(dir_okay=False, path_type=Path), default=None,
              envvar="INTEGRATIONS_STORE", show_envvar=True,
              help="Event store to read [default: data/integrations.duckdb].")
def command(port: int, host: str, db: Path | None) -> int:
    """Start the mapping workbench (Streamlit) on 127.0.0.1."""
    if not is_loopback(host) and not os.environ.get(PASSWORD_ENV):
        raise UsageError(f"refusing to listen on {host} without a password",
                         hint=f"set {PASSWORD_ENV} (the workbench then asks for it), or keep the default "
                              "127.0.0.1 behind an authenticating reverse proxy")
    env = dict(os.environ)
    if db is not None:
        env["INTEGRATIONS_STORE"] = str(db)
    click.echo(f"workbench on http://{host}:{port} (store: {env.get('INTEGRATIONS_STORE', 'data/integrations.duckdb')});"
               " Ctrl+C stops it", err=True)
    try:
        return subprocess.call(streamlit_command(port, host), env=env)
    except KeyboardInterrupt:
        return 130
