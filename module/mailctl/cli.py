"""`mailctl`: the command line of the mail module."""

from __future__ import annotations

import json
import os
import sys
import time

import click

from . import __version__, moduleimage
from .errors import EXIT_VALIDATION, MailError, ValidationFailed
from .settings import Instance


def _instance_options(f):
    """The options (and env vars) that name and place an instance."""
    options = [
        click.option("--instance", envvar="MAIL_INSTANCE", default="mail1", show_default=True,
                     help="Instance name (containers <instance>-<daemon>)."),
        click.option("--state-dir", envvar="MAIL_STATE_DIR", default=None,
                     help="Directory holding instance state (default /var/lib/mailctl)."),
        click.option("--bind", envvar="MAIL_BIND", default="", help="Host address for published ports."),
        click.option("--port-offset", envvar="MAIL_PORT_OFFSET", type=int, default=0,
                     help="Added to every published port (20000: SMTP on 20025)."),
        click.option("--engine", envvar="MAIL_ENGINE", type=click.Choice(["podman", "docker"]),
                     default="podman", show_default=True, help="Container engine."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _make_instance(instance, state_dir, bind, port_offset, engine, dispatch: bool = True) -> Instance:
    try:
        made = Instance.from_env(name=instance, state_root=state_dir, bind=bind,
                                 port_offset=port_offset, engine=engine)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    if dispatch:  # an instance installed from a module image runs its own runtime
        try:
            moduleimage.dispatch(made)
        except MailError as exc:
            _fail(exc)
    return made


def _fail(exc: MailError) -> None:
    click.echo(f"mailctl: {exc}", err=True)
    sys.exit(exc.exit_code)


@click.group()
@click.version_option(__version__, prog_name="mailctl")
def main() -> None:
    """Run and configure the mail server appliance."""


@main.command()
@_instance_options
@click.option("--timeout", type=float, default=180, show_default=True, help="Seconds to wait for health.")
def up(timeout, **opts):
    """Start the instance and wait until every daemon is healthy."""
    from . import lifecycle  # imported by the commands that use it: `mailctl run` starts faster

    instance = _make_instance(**opts)
    try:
        lifecycle.up(instance, progress=lambda m: click.echo(f"  {m}", err=True), timeout=timeout)
    except MailError as exc:
        _fail(exc)
    click.echo(f"instance {instance.name} is up (SMTP on port {instance.host_port(25)})", err=True)


@main.command()
@_instance_options
@click.option("--purge", is_flag=True, help="Also remove volumes and state: all mail is lost.")
def down(purge, **opts):
    """Stop and remove the instance's containers and networks (volumes are kept)."""
    from . import lifecycle

    instance = _make_instance(**opts)
    try:
        lifecycle.down(instance, purge=purge, progress=lambda m: click.echo(f"  {m}", err=True))
    except MailError as exc:
        _fail(exc)


@main.command()
@_instance_options
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def status(as_json, **opts):
    """Show each container with its state and health."""
    from . import lifecycle

    instance = _make_instance(**opts)
    try:
        rows = lifecycle.status(instance)
    except MailError as exc:
        _fail(exc)
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in rows], indent=2))
        return
    click.echo(f"{'CONTAINER':<24} {'STATE':<10} {'HEALTH':<10} RESTARTS")
    for r in rows:
        line = f"{r.name:<24} {r.state:<10} {r.health:<10} {r.restarts}"
        if r.next_start is not None:  # held stopped by `mailctl watch` after a crash loop
            line += f"  (next start in {max(0, round(r.next_start - time.time()))} s)"
        click.echo(line)
    if any(r.health != "healthy" for r in rows):
        sys.exit(1)


@main.command()
@_instance_options
@click.argument("daemon")
@click.option("--tail", type=int, default=None, help="Only the last N lines.")
def logs(daemon, tail, **opts):
    """Print the logs of one daemon (postfix, dovecot, rspamd, clamav, redis, openldap)."""
    from . import lifecycle

    instance = _make_instance(**opts)
    try:
        click.echo(lifecycle.logs(instance, daemon, tail), nl=False)
    except MailError as exc:
        _fail(exc)


@main.command(name="export")
@_instance_options
@click.option("--to", "dest", required=True, type=click.Path(dir_okay=False),
              help="Archive to write (tar.gz, mode 0600: it holds the secrets).")
def export_cmd(dest, **opts):
    """Export the instance's state and mail to an archive (it may keep running)."""
    from pathlib import Path

    from . import backup
    from .runner import instance_lock

    instance = _make_instance(**opts)
    try:
        with instance_lock(instance):
            manifest = backup.export_instance(instance, Path(dest), progress=lambda m: click.echo(f"  {m}", err=True))
    except MailError as exc:
        _fail(exc)
    click.echo(f"instance {instance.name} exported to {dest} (schema {manifest['schema_version']})", err=True)


@main.command(name="import")
@_instance_options
@click.option("--from", "source", required=True, type=click.Path(exists=True),
              help="Archive (or extracted export directory) made by 'mailctl export'.")
@click.option("--replace", is_flag=True, help="Overwrite an instance that is already configured.")
def import_cmd(source, replace, **opts):
    """Replace the instance's state and mail with an export (the import-module action)."""
    from . import runner

    instance = _make_instance(**opts)
    data = {"path": os.path.abspath(source), "replace": replace}
    try:
        runner.run_action(instance, "import-module", data)
    except ValidationFailed as exc:
        click.echo(json.dumps(exc.errors))
        sys.exit(exc.exit_code)
    except MailError as exc:
        _fail(exc)
    click.echo(f"instance {instance.name} imported from {source}", err=True)


_REPOSITORY = click.option("--repository", "-r", envvar="RESTIC_REPOSITORY", required=True,
                           help="restic repository: a path, sftp:host:/path, s3:https://host/bucket "
                                "(env RESTIC_REPOSITORY).")


@main.command()
@_instance_options
@_REPOSITORY
@click.option("--keep-daily", type=click.IntRange(min=1), default=None, help="Then forget all but N daily backups.")
@click.option("--keep-weekly", type=click.IntRange(min=1), default=None, help="Then forget all but N weekly backups.")
def backup(repository, keep_daily, keep_weekly, **opts):
    """Back the running instance up into a restic repository (incremental, encrypted)."""
    from . import restic
    from .runner import instance_lock

    instance = _make_instance(**opts)
    try:
        with instance_lock(instance):
            result = restic.backup_instance(instance, repository, progress=lambda m: click.echo(f"  {m}", err=True))
            if keep_daily or keep_weekly:
                restic.forget(instance, repository, keep_daily, keep_weekly)
    except MailError as exc:
        _fail(exc)
    if result.new_password:
        click.echo(f"new restic repository password: {result.new_password}\n"
                   f"WARNING: keep it somewhere safe, apart from this host: a restore into a new instance "
                   f"needs it (RESTIC_PASSWORD). It is kept in {restic.password_file(instance)} and not shown again.",
                   err=True)
    click.echo(json.dumps(result.as_dict()))
    click.echo(f"snapshot {result.snapshot_id}: {result.files_new} new and {result.files_changed} changed files, "
               f"{result.data_added} bytes added to the repository", err=True)


@main.command(name="list-backups")
@_instance_options
@_REPOSITORY
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def list_backups(repository, as_json, **opts):
    """The repository's snapshots with their sizes."""
    from . import restic

    instance = _make_instance(**opts)
    try:
        snapshots = restic.list_snapshots(instance, repository)
    except MailError as exc:
        _fail(exc)
    if as_json:
        click.echo(json.dumps(snapshots))
        return
    for snap in snapshots:
        click.echo(f"{snap['id']}  {snap['time']}  {snap['instance']:<20} "
                   f"{snap['size']:>14} bytes  {snap['files']} files")


@main.command()
@_instance_options
@_REPOSITORY
@click.option("--snapshot", default=None, help="Snapshot id (default: the latest of this instance, else the latest).")
@click.option("--replace", is_flag=True, help="Overwrite an instance that is already configured.")
def restore(repository, snapshot, replace, **opts):
    """Replace the instance's state and mail with a restic backup (the restore-module action)."""
    from . import runner

    instance = _make_instance(**opts)
    data = {"repository": repository, "replace": replace, **({"snapshot": snapshot} if snapshot else {})}
    try:
        out = runner.run_action(instance, "restore-module", data)
    except ValidationFailed as exc:
        click.echo(json.dumps(exc.errors))
        sys.exit(exc.exit_code)
    except MailError as exc:
        _fail(exc)
    click.echo(f"instance {instance.name} restored from snapshot {out.get('snapshot')} of {repository}", err=True)


def _read_data(data: str | None) -> object:
    """--data JSON, --data @file.json, --data - (stdin); no --data: stdin if piped, else nothing."""
    if data is None:
        data = "-" if not sys.stdin.isatty() else ""
    if data == "-":
        data = sys.stdin.read()
    elif data.startswith("@"):
        with open(data[1:]) as f:
            data = f.read()
    if not data.strip():
        return None
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        click.echo(json.dumps([{"field": "", "parameter": "", "value": None, "error": "invalid_json",
                                "message": f"input is not JSON: {exc}"}]))
        sys.exit(EXIT_VALIDATION)


@main.command()
@_instance_options
@click.argument("action")
@click.option("--data", default=None, help="Input JSON, @file.json, or - for stdin.")
def run(action, data, **opts):
    """Run one action and print its JSON output."""
    from . import runner

    instance = _make_instance(**opts)
    payload = _read_data(data)
    progress_fd = os.environ.get("MAIL_PROGRESS_FD")
    progress = None
    if progress_fd:
        stream = os.fdopen(int(progress_fd), "w", buffering=1)
        progress = lambda p: stream.write(json.dumps({"progress": p}) + "\n")  # noqa: E731
    try:
        output = runner.run_action(instance, action, payload, progress=progress)
    except ValidationFailed as exc:
        click.echo(json.dumps(exc.errors))
        sys.exit(exc.exit_code)
    except MailError as exc:
        _fail(exc)
    click.echo(json.dumps(output))


@main.command(name="actions")
def list_actions():
    """List every action with its one-line description."""
    from . import runner, schemas

    names = schemas.action_names()
    width = max(map(len, names))
    for name in names:
        mark = "" if runner.is_implemented(name) else "  [not implemented]"
        click.echo(f"{name:<{width}}  {schemas.describe(name)}{mark}")


@main.command()
@_instance_options
@click.option("--interval", type=float, default=5, show_default=True, help="Seconds between checks.")
def watch(interval, **opts):
    """Keep the instance's containers running: start or recreate one that stays down
    (stopped or killed through the engine, or lost by podman's conmon)."""
    from .watch import Watcher

    instance = _make_instance(**opts)
    try:
        Watcher(instance, log=lambda m: click.echo(m, err=True)).serve(interval)
    except MailError as exc:
        _fail(exc)


@main.command()
@_instance_options
@click.option("--redis", "redis_url", envvar="MAIL_REDIS_URL", default="redis://127.0.0.1:6379/0",
              show_default=True, help="Redis of the cluster manager.")
def agent(redis_url, **opts):
    """Run actions pushed on the Redis task queue module/<instance>/tasks."""
    from .agent import Agent

    instance = _make_instance(**opts)
    Agent(instance, redis_url, log=lambda m: click.echo(m, err=True)).serve()


@main.command(name="install-module")
@_instance_options
@click.argument("image")
@click.option("--unit-dir", envvar="MAIL_UNIT_DIR", default=str(moduleimage.DEFAULT_UNIT_DIR), show_default=True,
              help="Where the instance's systemd units are written.")
def install_module(image, unit_dir, **opts):
    """Install an instance from the module IMAGE (localhost/mail:<version>) and its daemon images."""
    from pathlib import Path

    instance = _make_instance(**opts, dispatch=False)
    try:
        moduleimage.install(instance, image, Path(unit_dir), progress=lambda m: click.echo(f"  {m}", err=True))
    except MailError as exc:
        _fail(exc)
    click.echo(f"instance {instance.name} installed from {image}: start it with "
               f"'mailctl up --instance {instance.name}'", err=True)


@main.command(name="remove-module")
@click.argument("name")
@click.option("--state-dir", envvar="MAIL_STATE_DIR", default=None,
              help="Directory holding instance state (default /var/lib/mailctl).")
def remove_module(name, state_dir):
    """Remove the installed instance NAME entirely: containers, volumes, networks, state, units."""
    instance = _make_instance(name, state_dir, None, None, None, dispatch=False)
    try:
        moduleimage.remove(instance, progress=lambda m: click.echo(f"  {m}", err=True))
    except MailError as exc:
        _fail(exc)


@main.command()
@_instance_options
@click.option("--port", type=int, default=None,
              help="HTTPS port (default 9443 plus the port offset).")
def serve(port, **opts):
    """Serve the admin UI and HTTP API over HTTPS (with the instance's certificate)."""
    from .web.server import default_port
    from .web.server import serve as serve_https

    instance = _make_instance(**opts)
    host = instance.bind or "0.0.0.0"
    try:
        serve_https(instance, host, port or default_port(instance))
    except MailError as exc:
        _fail(exc)


@main.command(name="admin-password")
@_instance_options
@click.option("--reset", is_flag=True, help="Make a new random password (the old one stops working).")
def admin_password(reset, **opts):
    """Print the password of the web UI's `admin` account."""
    from .runner import instance_lock
    from .secrets import ADMIN_PASSWORD, ensure_secrets, read_secret, reset_admin_password

    instance = _make_instance(**opts)
    with instance_lock(instance):
        ensure_secrets(instance)
        password = reset_admin_password(instance) if reset else read_secret(instance, ADMIN_PASSWORD)
    click.echo(password.strip())


@main.command()
@_instance_options
@click.option("--service-type", type=click.Choice(["LoadBalancer", "NodePort"]), default="LoadBalancer",
              show_default=True, help="Type of the Services of the public mail ports.")
@click.option("--storage", default="1Gi", show_default=True, help="Size requested by each PersistentVolumeClaim.")
@click.option("--podman", "for_podman", is_flag=True,
              help="For 'podman kube play': fixed daemon addresses on the instance's network, host ports.")
def kube(service_type, storage, for_podman, **opts):
    """Print Kubernetes manifests of the instance (the stack 'up' runs), e.g. > mail.yaml.

    They hold the instance's secrets: a file they are written to is made mode 0600.
    """
    from . import kube as manifests

    instance = _make_instance(**opts)
    try:
        text, hint = manifests.generate(instance, service_type, storage, for_podman)
    except MailError as exc:
        _fail(exc)
    if manifests.make_private(sys.stdout.fileno()):
        click.echo("mailctl: the output holds secrets: its file is now mode 0600", err=True)
    click.echo(text, nl=False)
    if hint:
        click.echo(hint, err=True)
