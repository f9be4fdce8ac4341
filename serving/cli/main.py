"""``sfai``: the command line for data scientists, operators and tenant admins.

State lives under ``SFAI_HOME`` (default ``./.sfai``); ``SFAI_DATABASE_URL`` points at PostgreSQL instead of
the embedded SQLite database. Every command prints what a script needs on stdout and notes on stderr; an
error is one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
from pathlib import Path

import typer
from pydantic import ValidationError

from optimization.cli import schedule_app
from pipelines.cli import industries_app
from pipelines.cli import register as register_dataset_ingest
from serving.cli import common
from serving.cli.admin import admin_app
from serving.cli.energy import energy_app
from serving.cli.features import features_app, ingest_app
from serving.cli.models import models_app, predict, train, tune
from serving.cli.platform import apikey_app, db_app, demo, serve, tenant_app, usage_app
from serving.db.engine import SchemaMismatch
from serving.errors import SfaiError

app = typer.Typer(
    name="sfai",
    help="SFAI: quality, maintenance, energy and scheduling AI for manufacturers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # click's plain help: rich's marked every flag "<bool>", as if it took a value
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        from serving import __version__

        typer.echo(f"sfai {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="print the release and exit (the schema's revision: sfai db status)"),
) -> None:
    """SFAI: quality, maintenance, energy and scheduling AI for manufacturers."""


app.add_typer(tenant_app, name="tenant")
app.add_typer(apikey_app, name="apikey")
app.add_typer(usage_app, name="usage")
app.add_typer(db_app, name="db")
app.add_typer(features_app, name="features")
register_dataset_ingest(ingest_app)  # sfai ingest cmapss|ai4i|secom|steel-energy|c22-demo
app.add_typer(ingest_app, name="ingest")
app.add_typer(industries_app, name="industries")
app.add_typer(schedule_app, name="schedule")
app.add_typer(models_app, name="models")
app.add_typer(admin_app, name="admin")
app.add_typer(energy_app, name="energy")
app.command("train")(train)
app.command("predict")(predict)
app.command("tune")(tune)
app.command("serve")(serve)
app.command("demo")(demo)


def _setting(loc: tuple) -> str:
    """A settings error's place as the operator sets it: ``SFAI_MAX_BODY_BYTES``, not ``max_body_bytes``."""
    from serving.settings import Settings

    if loc and loc[0] in Settings.model_fields:
        return ".".join([f"SFAI_{str(loc[0]).upper()}", *map(str, loc[1:])])
    return ".".join(map(str, loc))


def _one_line(e: BaseException) -> str:
    if isinstance(e, ValidationError):
        parts = []
        for x in e.errors():
            loc, msg = tuple(x.get("loc", ())), str(x.get("msg")).removeprefix("Value error, ")
            parts.append(f"{_setting(loc)}: {msg}" if loc else msg)  # a check of several settings names them itself
        return "invalid settings: " + "; ".join(parts)
    from pydantic_settings import SettingsError

    found = re.match(r'error parsing value for field "(\w+)" from source "EnvSettingsSource"', str(e))
    if isinstance(e, SettingsError) and found:  # a JSON setting that is not JSON: pydantic-settings' own words
        return (f"invalid settings: SFAI_{found.group(1).upper()} is not valid JSON (it takes a JSON value, e.g. "
                "SFAI_RATE_LIMITS='{\"trial\": 5}')")
    return " ".join(str(e).split()) or type(e).__name__


def _kind(e: BaseException) -> str:
    """The exception's name for an unexpected error; ``re.error`` and ``struct.error`` are both called ``error``,
    which after ``error: `` read as a stutter: those get their module (``re.error``)."""
    name = type(e).__name__
    return f"{type(e).__module__}.{name}" if name == "error" else name


def _is_usage_error(e: BaseException) -> bool:
    """Click's usage errors (``ClickException``: Typer's vendored copy or click itself, by their interface)."""
    return all(hasattr(e, a) for a in ("format_message", "exit_code", "show"))


def _usage_line(e: Exception) -> str:
    """A usage error in one line, with where to look: ``Invalid value for '--horizon': ... (see 'sfai predict
    --help')``."""
    ctx = getattr(e, "ctx", None)
    hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    return " ".join(e.format_message().split()) + hint


def _check_sqlite_folder() -> None:
    """A SQLite ``SFAI_DATABASE_URL`` outside ``SFAI_HOME`` must name a folder that exists: a typo would otherwise
    make a new folder and an empty database, silently. (``SFAI_HOME`` itself, and folders in it, are created.)"""
    from sqlalchemy.engine import make_url

    if len(sys.argv) < 2 or "--help" in sys.argv[1:]:
        return  # help needs no database
    try:
        s = common.settings()
        url = make_url(s.database_url) if s.database_url else None
    except Exception:  # noqa: BLE001 - bad settings: the command itself reports them, in one line
        return
    if url is None or url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return
    folder = Path(url.database).expanduser().absolute().parent
    home = s.home.expanduser().absolute()
    if not folder.is_dir() and not folder.is_relative_to(home):
        raise common.CliError(f"SFAI_DATABASE_URL names a SQLite file in {folder}, a folder that does not exist; "
                              "create it first (or fix the URL)")


class _CliFormatter(logging.Formatter):
    """Log records in the CLI's own format, the one its notes use: ``warning: ...`` (``error: ...``), one line."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {super().format(record)}"


class _Terminated(SystemExit):
    """SIGTERM, raised where the process is: it unwinds as any exit does, and says so on stderr at the end."""


def _terminated(signum, frame) -> None:  # noqa: ANN001
    raise _Terminated(128 + signum)


_INTERRUPTED = 128 + signal.SIGINT  # the shell's exit code for Ctrl-C; no command exits with it of its own


def run() -> None:
    """Console-script entry point: run the app, turning every failure into one line and a non-zero exit."""
    handler = logging.StreamHandler()
    handler.setFormatter(_CliFormatter())
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    # SIGTERM (docker stop, systemd, timeout) as an exit that unwinds: a restore or a backup undoes what it wrote,
    # as it does on Ctrl-C, instead of the process ending mid-way (``sfai serve``'s server installs its own)
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        _run()
    except _Terminated:
        common.fail("terminated (SIGTERM)", 128 + signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, previous)  # run in-process (the tests): the caller's handler again


def _run() -> None:
    try:
        _check_sqlite_folder()
        rv = app(standalone_mode=False)  # click's errors come here instead of its boxed multi-line form
    except SystemExit:
        raise
    except typer.Abort:
        common.fail("aborted")
    except (SfaiError, common.CliError, SchemaMismatch, ValidationError, OSError, ValueError) as e:
        if os.environ.get("SFAI_DEBUG"):
            raise
        common.fail(_one_line(e))
    except KeyboardInterrupt:
        common.fail("interrupted (Ctrl-C)", _INTERRUPTED)
    except Exception as e:  # noqa: BLE001 - a user never sees a traceback unless SFAI_DEBUG is set
        if _is_usage_error(e):  # a bad option, a missing argument, a value of the wrong type
            if type(e).__name__ == "NoArgsIsHelpError":  # a bare group (``sfai``, ``sfai models``): its help,
                sys.exit(e.exit_code)  # already printed
            common.fail(_usage_line(e), e.exit_code)
        if os.environ.get("SFAI_DEBUG"):
            raise
        common.fail(f"{_kind(e)}: {_one_line(e)} (set SFAI_DEBUG=1 for details)")
    if rv == _INTERRUPTED:  # typer turns Ctrl-C into this exit code, without a word
        common.fail("interrupted (Ctrl-C)", _INTERRUPTED)
    if isinstance(rv, int) and not isinstance(rv, bool):  # ``--help`` or ``typer.Exit(code)``: its exit code
        sys.exit(rv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run())
