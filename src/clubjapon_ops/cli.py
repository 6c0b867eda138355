"""The command line: parses arguments, wires objects, prints. The work lives in jobs."""

from __future__ import annotations

import logging
import sys
import traceback
from dataclasses import dataclass, field
from typing import Any

import click

from clubjapon_ops import __version__, jobs
from clubjapon_ops.errors import ClubJaponError, ConfigError
from clubjapon_ops.logs import RedactFilter, setup_logging
from clubjapon_ops.settings import Settings, find_root, load_settings
from clubjapon_ops.store import Store, open_store
from clubjapon_ops.store.contacts import contact_counts
from clubjapon_ops.store.runs import recent_runs

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


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
        return self._settings

    @property
    def store(self) -> Store:
        """Open and migrate the database once."""
        if self._store is None:
            self._store = open_store(self.settings.database_url)
        return self._store


_state: dict[str, Any] = {"debug": False, "app": App()}


@click.group(
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


@cli.command()
@click.option("--full", is_flag=True, help="Re-read everything, not only what changed.")
@click.pass_obj
def sync(app: App, full: bool) -> int:
    """Pull contacts from the configured CRM (CLUBJAPON_CRM) into the store.

    \b
    Examples:
      clubjapon-ops sync
      clubjapon-ops sync --full
      CLUBJAPON_CSV_PATH=export.csv clubjapon-ops sync
    """
    report = jobs.crm_sync(app.settings, app.store, full=full, trigger="cli")
    c = report.counts()
    mode = "full" if report.full else "incremental"
    click.echo(
        f"Synced from {c['source']} ({mode}): {c['fetched']} fetched, {c['created']} created, "
        f"{c['updated']} updated, {c['unchanged']} unchanged, {c['merged']} merged duplicates, "
        f"{c['skipped']} skipped"
    )
    for reason, n in sorted(report.skip_reasons.items(), key=lambda kv: (-kv[1], kv[0])):
        click.echo(f"  skipped {n:>4} × {reason}")
    return EXIT_OK


@cli.command()
@click.option("--runs", "limit", default=10, show_default=True, help="How many job runs to show.")
@click.pass_obj
def status(app: App, limit: int) -> int:
    """Show contact counts and the latest job runs.

    \b
    Example:
      clubjapon-ops status --runs 20
    """
    with app.store.transaction() as conn:
        counts = contact_counts(conn)
        runs = recent_runs(conn, limit)
    click.echo(f"Database: {app.settings.masked_database_url()}")
    click.echo(
        f"Contacts: {counts.get('contacts', 0)} in all; "
        + ", ".join(
            f"{k.removeprefix('language_')} {v}"
            for k, v in sorted(counts.items())
            if k.startswith("language_")
        )
        + f"; opted out {counts.get('opted_out', 0)}; archived {counts.get('archived', 0)}; "
        f"suppressed addresses {counts.get('suppressed_emails', 0)}"
    )
    if not runs:
        click.echo("No job has run yet.")
        return EXIT_OK
    click.echo(f"\n{'#':>5}  {'job':<14} {'started (UTC)':<19}  {'status':<8} {'took':>7}  details")
    for run in runs:
        took = f"{run['duration_s']:.1f}s" if run["duration_s"] is not None else "-"
        details = run["error"] or _summary(run["counts"])
        click.echo(
            f"{run['id']:>5}  {run['job']:<14} {run['started_at']:%Y-%m-%d %H:%M:%S}  "
            f"{run['status']:<8} {took:>7}  {details}"
        )
    return EXIT_OK


def _summary(counts: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items() if isinstance(v, int | float | str))


@cli.command("config")
@click.pass_obj
def show_config(app: App) -> int:
    """Print the effective settings, secrets masked, and where each value came from.

    \b
    Example:
      SMTP_PORT=2525 clubjapon-ops config
    """
    settings = app.settings
    click.echo(f"Project root: {settings.root}")
    rows = settings.describe()
    width = max(len(name) for name, _, _ in rows)
    for name, value, origin in rows:
        click.echo(f"{name:<{width}}  {value}  [{origin}]")
    return EXIT_OK


def main(argv: list[str] | None = None) -> None:
    """Run the CLI and turn errors into one line on stderr and an exit code."""
    code = EXIT_FAILED
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
    except ConfigError as exc:
        _fail(f"configuration error: {exc}")
        code = EXIT_USAGE
    except ClubJaponError as exc:
        _fail(f"error: {exc}")
        code = EXIT_FAILED
    except Exception as exc:
        _fail(f"unexpected error: {type(exc).__name__}: {exc} (run with --debug for details)")
        code = EXIT_FAILED
    sys.exit(code)


def _fail(line: str) -> None:
    app: App = _state["app"]
    if _state["debug"]:
        click.echo(app.redact.redact(traceback.format_exc()), err=True)
    click.echo(app.redact.redact(line), err=True)
