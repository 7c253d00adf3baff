"""The ``ccm`` command line.

Settings are read when a command runs (so ``-h`` works whatever the environment says); a setting
that is missing or wrong ends any command with one line naming the variable, and exit status 2.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ccm.auth.cli import api_keys
from ccm.config import Settings, SettingsError
from ccm.logs import configure_logging
from ccm.users.cli import users

if TYPE_CHECKING:  # imported where used, so that ``ccm -h`` loads neither
    from werkzeug.serving import BaseWSGIServer

    from ccm.runtime import Runtime

DEFAULT_WORKSPACE = "default"


class SettingsProblem(click.ClickException):
    exit_code = 2


class _Commands(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        from sqlalchemy.exc import InterfaceError, OperationalError

        try:
            return super().invoke(ctx)
        except SettingsError as exc:
            raise SettingsProblem(str(exc)) from None
        except (OperationalError, InterfaceError) as exc:
            reason = str(exc.orig or exc).strip().splitlines()[0]
            raise click.ClickException(f"cannot use the database at CCM_DATABASE_URL: {reason}") from None


@click.group("ccm", cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ccm", prog_name="ccm", message="%(prog)s %(version)s")
@click.pass_context
def main(ctx: click.Context) -> None:
    """CCM: customer profiles, versioned templates, and consent-aware delivery."""
    ctx.obj = _unit_of_work


def pass_settings(command: Callable[..., Any]) -> Callable[..., Any]:
    """Call ``command`` with the settings, read from ``CCM_*`` once per run."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        root = click.get_current_context().find_root()
        if "settings" not in root.meta:
            root.meta["settings"] = Settings.from_env()
            configure_logging(root.meta["settings"].log_level)
        return command(root.meta["settings"], *args, **kwargs)

    return run


@pass_settings
def _unit_of_work(settings: Settings) -> Any:
    """The database's unit of work, for command groups defined in other modules (``ccm users``)."""
    return _runtime(settings).db.unit_of_work()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@pass_settings
def serve(settings: Settings, host: str, port: int) -> None:
    """Serve the API. On the embedded default (no CCM_REDIS_URL) the worker runs in this process,
    and links in messages point at this server unless CCM_PUBLIC_URL is set."""
    from werkzeug.serving import make_server

    from ccm.app import create_app
    from ccm.bootstrap import default_api_key, first_admin, prepare_embedded
    from ccm.runtime import create_runtime
    from ccm.worker import InProcessWorker, install

    settings.resolved_secret_key()  # a missing key is said before anything else is tried
    # Bound first, so that links follow the port actually taken (--port 0 picks one).
    server = make_server(host, port, _not_ready, threaded=True)
    settings = settings.listening_on(host, server.server_port)
    if settings.embedded:
        prepare_embedded(settings)
    runtime = create_runtime(settings)
    install(runtime)
    key = default_api_key(runtime, workspace=DEFAULT_WORKSPACE)
    admin = first_admin(runtime, workspace=DEFAULT_WORKSPACE)
    worker = InProcessWorker(runtime, threads=settings.in_process_worker_threads) if settings.embedded else None
    if worker:
        worker.start()
    server.app = create_app(runtime=runtime)
    _print_banner(settings, f"http://{host}:{server.server_port}", key, admin)
    _serve_until_signal(server)
    if worker:
        worker.stop()
    runtime.close()


@main.command()
@click.option("--processes", type=int, default=None, help="worker processes (default: one more than the CPUs)")
@click.option("--threads", type=int, default=6, show_default=True)
@pass_settings
def worker(settings: Settings, processes: int | None, threads: int) -> None:
    """Run Dramatiq worker processes (production: needs CCM_REDIS_URL). Same as `dramatiq workers`.

    One process more than the CPUs, six threads each: a process's threads share one interpreter
    lock, so a campaign's deliveries went 860 → 1,060 messages/s from 2 × 8 to 3 × 6 on 2 cores
    (bench/README.md)."""
    if settings.embedded:
        raise click.ClickException("CCM_REDIS_URL is not set: on the embedded default `ccm serve` runs the worker")
    settings.resolved_secret_key()  # said here in one line, not in a traceback from every worker process
    from dramatiq.cli import main as dramatiq_main

    processes = processes or (os.cpu_count() or 1) + 1
    sys.argv = ["dramatiq", "workers", "--threads", str(threads), "--processes", str(processes)]
    sys.exit(dramatiq_main())


main.add_command(users)
main.add_command(api_keys)


@main.group()
def db() -> None:
    """Database schema."""


@db.command()
@pass_settings
def upgrade(settings: Settings) -> None:
    """Apply every pending migration; says which, or that there were none."""
    from ccm.migrate import upgrade as run_upgrade

    if settings.embedded:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    click.echo(run_upgrade(settings.resolved_database_url).describe())


@db.command()
@click.option("--message", "-m", required=True, help="what the migration does")
@pass_settings
def revision(settings: Settings, message: str) -> None:
    """Write a new migration from the difference between the models and the database (at head)."""
    from ccm.migrate import new_revision

    click.echo(new_revision(settings.resolved_database_url, message))


@main.group()
def templates() -> None:
    """Message templates."""


@templates.command("import")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--workspace", default=DEFAULT_WORKSPACE, show_default=True)
@pass_settings
def import_templates(settings: Settings, folder: Path, workspace: str) -> None:
    """Import layouts, partials and templates from FOLDER and publish them."""
    from ccm.message_templates.importer import ImportFailed, import_folder
    from ccm.workspaces.service import get_or_create_workspace

    runtime = _runtime(settings)
    try:
        with runtime.db.unit_of_work() as session:
            ws, _ = get_or_create_workspace(session=session, name=workspace)
            with click.progressbar(length=_count_importable(folder), label="importing", file=sys.stderr) as bar:
                results = import_folder(
                    session=session,
                    sandbox=runtime.sandbox,
                    workspace_id=ws.id,
                    root=folder,
                    progress=lambda _: bar.update(1),
                )
    except ImportFailed as exc:
        raise click.ClickException(f"nothing imported: {exc}") from None
    for result in results:
        click.echo(f"{result.key}: version {result.version}{'' if result.created else ' (unchanged)'}")


@main.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--workspace", default=DEFAULT_WORKSPACE, show_default=True, help="created if it does not exist")
@click.option(
    "--map",
    "maps",
    multiple=True,
    metavar="HEADER=FIELD",
    help="map a column (repeatable): email, attributes.plan, consent.sms, skip …",
)
@click.option("--consent-source", default=None, help="where the file's consent was collected (kept as proof)")
@pass_settings
def import_profiles(
    settings: Settings, file: Path, workspace: str, maps: tuple[str, ...], consent_source: str | None
) -> None:
    """Import profiles from a CSV FILE, in this process; prints one summary line."""
    from ccm.imports.local import import_file

    runtime = _runtime(settings)
    with click.progressbar(length=0, label="importing", file=sys.stderr) as bar:
        job = import_file(runtime, file, workspace=workspace, maps=list(maps), consent_source=consent_source, bar=bar)
    click.echo(job)


@main.group("imports")
def imports_group() -> None:
    """Profile imports from CSV files."""


@imports_group.command("report")
@click.argument("import_id")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None, help="default: stdout")
@pass_settings
def import_report(settings: Settings, import_id: str, output: Path | None) -> None:
    """Write an import's row report as CSV: row, column, value, reason."""
    from ccm.imports.local import write_report

    runtime = _runtime(settings)
    if output is None:
        write_report(runtime, import_id, sys.stdout)
        return
    with output.open("w", encoding="utf-8", newline="") as out:
        write_report(runtime, import_id, out)


@main.command("smtp-inbound")
@click.option("--host", default="0.0.0.0", show_default=True)
@click.option("--port", default=2525, show_default=True, type=int)
@pass_settings
def smtp_inbound(settings: Settings, host: str, port: int) -> None:
    """Receive replies and bounces by SMTP for CCM_INBOUND_DOMAIN (point its MX here)."""
    from ccm.conversations.service import receive_email
    from ccm.conversations.smtp_inbound import InboundSmtpServer

    if not settings.inbound_domain:
        raise click.ClickException("set CCM_INBOUND_DOMAIN to the domain this server receives mail for")
    runtime = _runtime(settings)

    def handle(raw: bytes, mail_from: str, rcpt_tos: tuple[str, ...]) -> None:
        with runtime.db.unit_of_work() as session:
            receive_email(runtime, session, raw, rcpt_tos)

    server = InboundSmtpServer(handle, host=host, port=port, domains=[settings.inbound_domain])
    server.start()
    click.echo(f"receiving mail for {settings.inbound_domain} on {host}:{server.port}")
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    stopped.wait()
    server.stop()
    runtime.close()


@main.command()
@click.option("--limit", default=20, show_default=True)
@click.option("--raw", "message_id", default=None, help="print the raw message for this message id")
@pass_settings
def outbox(settings: Settings, limit: int, message_id: str | None) -> None:
    """List the local outbox, newest first (or print one message in full)."""
    from ccm.channels.service import list_outbox
    from ccm.pagination import PageQuery

    with _runtime(settings).db.unit_of_work() as session:
        items, _ = list_outbox(session=session, workspace_id=None, page=PageQuery(limit=limit), message_id=message_id)
        if message_id:
            if not items:
                raise click.ClickException(f"no outbox item for message {message_id}")
            click.echo(items[0].raw)
            return
        for item in items:
            subject = next((line[9:] for line in item.raw.splitlines() if line.startswith("Subject: ")), "")
            click.echo(
                f"{item.created_at:%Y-%m-%d %H:%M:%S}  {item.message_id}  {item.channel:5}  "
                f"{item.to_address}  {subject}"
            )


@main.command("seed-demo")
@click.option("--workspace", default=DEFAULT_WORKSPACE, show_default=True)
@click.option("--profiles", default=25, show_default=True)
@pass_settings
def seed_demo(settings: Settings, workspace: str, profiles: int) -> None:
    """Import the starter templates and create demo profiles (and send each a welcome message).
    Templates, snippets and profiles the workspace already has are left alone and listed as skipped."""
    from ccm.bootstrap import seed_demo as run_seed

    runtime = _runtime(settings)
    with click.progressbar(length=profiles, label="seeding", file=sys.stderr) as bar:
        seeded = run_seed(runtime, workspace=workspace, profiles=profiles, progress=lambda: bar.update(1))
    click.echo(
        f"{seeded.profiles_created} profiles created, {seeded.messages_queued} welcome messages queued "
        "(the worker delivers them)"
    )
    if seeded.skipped:
        click.echo(f"skipped, already in the workspace (left as they are): {', '.join(seeded.skipped)}")


@main.command("seed")
@click.option("--workspace", default="seed", show_default=True, help="created if missing; refused if it has profiles")
@click.option("--profiles", default=10_000, show_default=True, type=click.IntRange(1, 50_000_000))
@click.option("--events-per-profile", default=4, show_default=True, type=click.IntRange(0, 1_000), help="on average")
@click.option(
    "--seed", "seed_value", default=1, show_default=True, type=int, help="the same seed makes the same people"
)
@pass_settings
def seed(settings: Settings, workspace: str, profiles: int, events_per_profile: int, seed_value: int) -> None:
    """Create a realistic workspace of made-up profiles (never reachable: example and test domains,
    example phone ranges) with consent, suppressions, events, engagement, a published marketing
    template and a postal address — for trying segments and campaigns, and for the benchmarks."""
    from ccm.errors import Conflict
    from ccm.seeding.service import seed_workspace

    runtime = _runtime(settings)
    try:
        with click.progressbar(length=profiles, label="seeding profiles", file=sys.stderr) as bar:
            seeded = seed_workspace(
                runtime,
                workspace=workspace,
                profiles=profiles,
                events_per_profile=events_per_profile,
                seed=seed_value,
                progress=bar.update,
            )
    except Conflict as exc:
        raise click.ClickException(exc.message) from None
    counts = seeded.counts
    click.echo(
        f"workspace {workspace!r} ({seeded.workspace_id}): {counts['profile']:,} profiles, "
        f"{counts['consent_record']:,} consent records, {counts['suppression']:,} suppressions, "
        f"{counts['event']:,} events, {counts['engagement_event']:,} engagement events "
        f"in {seeded.seconds:.1f} s"
    )


def _runtime(settings: Settings) -> Runtime:
    from ccm.bootstrap import prepare_embedded
    from ccm.runtime import create_runtime

    settings.resolved_secret_key()  # a missing key is said before anything else is tried
    if not settings.embedded:
        return create_runtime(settings)
    prepare_embedded(settings)
    runtime = create_runtime(settings)
    runtime.publisher.relay_only = True  # no worker here: `ccm serve` picks the jobs up
    return runtime


def _count_importable(folder: Path) -> int:
    from ccm.message_templates.importer import SNIPPET_FOLDERS

    snippets = sum(1 for sub in SNIPPET_FOLDERS for p in (folder / sub).rglob("*") if p.is_file())
    return snippets + sum(1 for p in (folder / "messages").glob("*/template.toml"))


def _not_ready(environ: Any, start_response: Any) -> list[bytes]:
    """Answers nothing: the server is bound before the app exists, but serves only after."""
    start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
    return [b"starting\n"]


def _print_banner(settings: Settings, url: str, key: str | None, admin: tuple[str, str] | None) -> None:
    mode = "embedded (SQLite, in-process worker" if settings.embedded else "production (external workers"
    email = f"SMTP {settings.smtp_url.split('@')[-1]}" if settings.smtp_url else "local outbox"
    click.echo(f"CCM listening on {url}  —  {mode}, email → {email})")
    click.echo(
        f"Links in messages point at {settings.public_url}"
        + ("" if settings.public_url_given else " (set CCM_PUBLIC_URL to change it)")
    )
    if key:
        click.echo(f"API key for workspace '{DEFAULT_WORKSPACE}': {key}")
    if admin:
        click.echo(f"First admin of workspace '{DEFAULT_WORKSPACE}' (shown once): {admin[0]} / {admin[1]}")
    click.echo(f"Try: curl -H 'Authorization: Bearer <key>' {url}/v1/outbox")


def _serve_until_signal(server: BaseWSGIServer) -> None:
    def shutdown(_signum: int, _frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    server.serve_forever()
