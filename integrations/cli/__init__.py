"""The one `integrations` command: a thin shell over the library.

Each subcommand lives in its own module (`integrations/cli/<name>.py`, exposing `command`) and is
imported only when it runs, so `integrations --help` stays fast and a missing optional extra only
breaks the command that needs it. `main()` turns any IntegrationsError into one red
`file:line:col` line with a hint, and the error's exit code; `--debug` shows the traceback.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

import click

from integrations.errors import IntegrationsError

# subcommand name -> (module, help). Add a line here to add a command.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("integrations.cli.run", "Fetch, map, enrich and store events for every tenant."),
    "map": ("integrations.cli.map", "Map records from a file or stdin with one mapping."),
    "validate": ("integrations.cli.validate", "Check mapping files; print every error as path:line:col."),
    "test-mappings": ("integrations.cli.test_mappings", "Run the golden examples kept beside the mappings."),
    "schema": ("integrations.cli.schema", "Print the JSON Schema of events or mapping files."),
    "events": ("integrations.cli.events", "List or export stored events."),
    "dlq": ("integrations.cli.dlq", "List and replay dead letters."),
    "plugins": ("integrations.cli.plugins", "List and show registered plugins."),
    "health": ("integrations.cli.health", "Show each integration's health figures and breaker state."),
    "credentials": ("integrations.cli.credentials", "Set, list, test, delete and rotate credentials."),
    "webhooks": ("integrations.cli.webhooks", "Serve the webhook receiver."),
    "remap": ("integrations.cli.remap", "Re-apply today's mappings to the raw records kept per source."),
    "doctor": ("integrations.cli.doctor", "Check configuration, credentials and connectivity without writing."),
    "config": ("integrations.cli.config", "Show, change and audit a tenant's configuration."),
    "tenant": ("integrations.cli.tenant", "Create, list and delete tenants; apply retention."),
    "workbench": ("integrations.cli.workbench", "Start the mapping workbench (Streamlit) on 127.0.0.1."),
    "correlations": ("integrations.cli.correlations", "List correlations and explain how an event was correlated."),
    "schedule": ("integrations.cli.schedule", "Run the jobs of runner.yaml on their cron schedules."),
    "notebook": ("integrations.cli.notebook", "Run a parameterised notebook with papermill."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module_name, _help = COMMANDS[name]
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name and err.name.startswith("integrations"):
                return _unavailable(name, "this command is not available in this version")
            return _unavailable(name, f"missing dependency '{err.name}': pip install 'integrations-workbench[dev]'")
        return module.command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _unavailable(name: str, why: str) -> click.Command:
    @click.command(name=name, help=why, context_settings={"ignore_unknown_options": True})
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def stub(args: tuple[str, ...]) -> None:
        raise click.ClickException(why)

    return stub


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, envvar="INTEGRATIONS_DEBUG", help="Show tracebacks.")
@click.option("--log-level", default="WARNING", show_default=True, envvar="INTEGRATIONS_LOG_LEVEL")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              envvar="INTEGRATIONS_LOG_FORMAT", help="json: one structured JSON object per log line.")
@click.version_option(package_name="integrations-workbench")
@click.pass_context
def cli(ctx: click.Context, debug: bool, log_level: str, log_format: str) -> None:
    """Turn data from external services into canonical events."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    configure_logging(log_level, log_format)


def configure_logging(level: str, fmt: str) -> None:
    """Plain lines for people, or JSON objects (with every `extra` field) for log pipelines."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s",
                                           rename_fields={"asctime": "time", "levelname": "level", "name": "logger"}))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler._integrations = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    foreign = [h for h in root.handlers if not getattr(h, "_integrations", False)]
    if foreign:  # embedded (a notebook, a test harness): leave the host's logging as it is
        return
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper(), logging.WARNING))


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI and map errors to exit codes."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:]) or bool(os.environ.get("INTEGRATIONS_DEBUG"))
    try:
        result = cli.main(args=argv, prog_name="integrations", standalone_mode=False)
    except IntegrationsError as err:
        if debug:
            raise
        click.secho(f"error: {err.render()}", fg="red", err=True)
        return err.exit_code
    except click.exceptions.Exit as err:
        return err.exit_code
    except click.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.UsageError as err:
        err.show()
        return 2
    except click.ClickException as err:
        err.show()
        return err.exit_code
    return result if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
