"""The command line: parses arguments, wires objects, prints. The work lives in jobs."""

from __future__ import annotations

import logging
import sys
import traceback
from dataclasses import dataclass, field
from typing import Any

import click
from sqlalchemy.exc import OperationalError

from clubjapon_ops import __version__
from clubjapon_ops.errors import ClubJaponError, ConfigError, EditionError
from clubjapon_ops.logs import RedactFilter, TextFormatter, setup_logging
from clubjapon_ops.settings import Settings, find_root, load_settings
from clubjapon_ops.store import Store, open_store
from clubjapon_ops.store.failures import database_failure, first_line

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

# --help lists the commands by who runs them, each in one line (under 60 characters, so the
# list fits 80 columns); a command missing here shows under "Other" with its own first line.
SECTIONS: dict[str, dict[str, str]] = {
    "Marketing": {
        "preview": "Render, lint or serve an edition as its readers see it",
        "edition": "Start, list and check the editions under config/editions/",
        "report": "How an edition did: states, deliveries, bounces, opens",
    },
    "Ops": {
        "send": "Send an edition (or test copies), recording every outcome",
        "status": "Contacts and latest job runs, or an edition's ledger",
        "unsubscribe": "Suppress an address by hand",
        "contacts": "Look a contact up: details, ledger, events",
        "sync": "Pull contacts from the CRM, write unsubscribes back",
        "lists": "The CRM's lists: members, suppressed, last synced",
        "suppressions": "List, remove, import or export suppressed addresses",
        "bounces": "Read the bounce mailbox: bounces and complaints",
    },
    "Scheduling": {
        "scheduler": "Run the jobs of jobs/ on their schedules",
        "jobs": "List the jobs of jobs/ with their next and last runs",
        "run": "Run one job of jobs/ once, now",
    },
    "Administration": {
        "config": "Show the effective settings and where each came from",
        "web": "Serve the public app: unsubscribe pages and webhooks",
    },
}


class SectionedGroup(click.Group):
    """A group whose --help lists its commands in SECTIONS, each with a one-line summary."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Write one definition list per section, in SECTIONS order."""
        commands = {name: self.get_command(ctx, name) for name in self.list_commands(ctx)}
        listed = {name for names in SECTIONS.values() for name in names}
        others = {name: "" for name in sorted(set(commands) - listed)}
        for title, summaries in [*SECTIONS.items(), ("Other", others)]:
            rows = [(name, summary or command.get_short_help_str())
                    for name, summary in summaries.items()
                    if (command := commands.get(name)) is not None and not command.hidden]
            if rows:
                with formatter.section(f"{title} commands"):
                    formatter.write_dl(rows)


def complete_edition(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[click.shell_completion.CompletionItem]:
    """Shell completion of EDITION: the edition files of this project."""
    from clubjapon_ops.newsletter.content import list_editions

    try:
        slugs = list_editions(find_root())
    except OSError:
        return []
    return [click.shell_completion.CompletionItem(s) for s in slugs if s.startswith(incomplete)]


@dataclass
class App:
    """What every command needs, built on first use so that --help never reads config."""

    handler: logging.Handler | None = None
    _settings: Settings | None = None
    _store: Store | None = None
    redact: RedactFilter = field(default_factory=lambda: RedactFilter(()))

    @property
    def settings(self) -> Settings:
        """Load the settings once and teach the log filter their secrets."""
        if self._settings is None:
            self._settings = load_settings(find_root())
            self.redact = RedactFilter(self._settings.secrets())
            if self.handler is not None:
                for old in list(self.handler.filters):
                    self.handler.removeFilter(old)
                self.handler.addFilter(self.redact)
                if isinstance(self.handler.formatter, TextFormatter):
                    # Lines a person reads on a terminal: in the club's zone, written out.
                    self.handler.formatter.zone = self._settings.timezone
        return self._settings

    @property
    def store(self) -> Store:
        """Open and migrate the database once."""
        if self._store is None:
            from clubjapon_ops.store.pending import PendingUnsubscribes, pending_path

            self._store = open_store(self.settings.database_url)
            self._store.pending = PendingUnsubscribes(pending_path(self.settings.root))
        return self._store


_state: dict[str, Any] = {"debug": False, "app": App()}


@click.group(
    cls=SectionedGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="Run 'clubjapon-ops COMMAND --help' for a command's options and examples.",
)
@click.version_option(__version__, prog_name="clubjapon-ops")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.option(
    "--log-json/--log-text",
    default=None,
    help="Log format on stderr (default: text on a terminal, JSON lines otherwise).",
)
@click.option("-q", "--quiet", is_flag=True, help="Only log warnings and errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool, log_json: bool | None, quiet: bool) -> None:
    """Club Japon des Hauts-de-France: CRM sync, newsletter and sending.

    \b
    Settings come from config/clubjapon.toml, .env and the environment;
    'clubjapon-ops config' shows the effective values and where each came from.
    """
    level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    app: App = _state["app"]
    app.handler = setup_logging(json_lines=log_json, level=level)
    _state["debug"] = debug
    ctx.obj = app


def _register_commands() -> None:
    # Each module adds its commands to the group when imported; one line per module here.
    from clubjapon_ops.cli import (  # noqa: F401
        bounces,
        contacts,
        core,
        editions,
        lists,
        newsletter,
        reporting,
        scheduling,
        sending,
        suppressions,
    )


def main(argv: list[str] | None = None) -> None:
    """Run the CLI and turn errors into one line on stderr and an exit code."""
    code = EXIT_FAILED
    _register_commands()
    try:
        result = cli.main(args=argv, prog_name="clubjapon-ops", standalone_mode=False)
        code = result if isinstance(result, int) else EXIT_OK
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.ClickException as exc:
        exc.show()
        code = exc.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("interrupted", err=True)
        code = EXIT_INTERRUPTED
    except EditionError as exc:
        for line in str(exc).splitlines():  # one mistake a line, each with its label
            _fail(f"edition error: {line}")
        code = EXIT_USAGE
    except ConfigError as exc:
        _fail(f"configuration error: {exc}")
        code = EXIT_USAGE
    except ClubJaponError as exc:
        _fail(f"error: {exc}")
        code = EXIT_FAILED
    except OperationalError as exc:
        # Met on a connection of its own, outside Store.transaction: the same one line.
        _fail(f"error: {database_failure(exc, _state['app'].settings.database_url)}")
        code = EXIT_FAILED
    except Exception as exc:
        # First line only: SQLAlchemy's message goes on with the SQL and its parameters.
        _fail(f"unexpected error: {type(exc).__name__}: {first_line(exc)} "
              "(run with --debug for details)")
        code = EXIT_FAILED
    sys.exit(code)


def _fail(line: str) -> None:
    app: App = _state["app"]
    if _state["debug"]:
        click.echo(app.redact.redact(traceback.format_exc()), err=True)
    click.echo(app.redact.redact(line), err=True)
