"""The ``mentor-agent`` command line. Every user-facing error ends here: printed as advice, exit code 1."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, tzinfo
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import click

from agent import __version__
from agent.cli.support import EX_CONFIG, AgentGroup, friendly, print_problems
from agent.config.settings import Settings, default_config_path, file_kind, load_settings, setup_advice
from agent.errors import Problem, UserError
from agent.rules.localtime import zone_named
from agent.rules.policy import LoadedPolicy, check_unique_addresses, load_policy, policy_files, read_toml

if TYPE_CHECKING:
    from agent.rules.simulate import Outcome

# Protocol and sign-in traces drown the decisions (msal's DEBUG lines dump its token cache events).
NOISY_LOGGERS = ("imapclient", "asyncio", "mail.log", "msal", "urllib3", "google", "requests_oauthlib")


@click.group(cls=AgentGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mentor-agent")
@click.option("--debug", is_flag=True, help="Show the full traceback of an unexpected failure.")
def main(debug: bool) -> None:
    """Keeps the communication standards you agreed with each mentor."""


# -- check ------------------------------------------------------------------------------------------------------


def _unread_policies(folder: Path) -> list[Path]:
    """Files in ``folder`` with a ``[mentor]`` table that the agent does not read (``rivera.tml``, ``rivera.toml.bak``,
    ``RIVERA.TOML``): a slip that leaves a mentor unpaced."""
    import tomllib

    found = []
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if path.name.startswith(".") or path.suffix == ".toml" or not path.is_file() or path.stat().st_size > 65536:
            continue
        try:
            if isinstance(tomllib.loads(path.read_text(encoding="utf-8")).get("mentor"), dict):
                found.append(path)
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            continue
    return found


def _check_paths(
    paths: tuple[Path, ...], config: Path | None
) -> tuple[list[LoadedPolicy], list[Problem], list[tuple[Settings, Path]]]:
    """Every policy and config file among ``paths`` (or the config and its policies), judged as ``run`` would."""
    from agent.daemon import preflight

    problems: list[Problem] = []
    policies: list[LoadedPolicy] = []
    configs: list[tuple[Settings, Path]] = []
    targets: list[Path] = list(paths)
    if not targets:
        settings_file = config or default_config_path()
        if not settings_file.exists() and (config or not Path("policies").exists()):  # before `setup`
            return [], [Problem(str(settings_file), "", f"no such config file; {setup_advice(config)}")], []
        targets.append(settings_file if settings_file.exists() else Path("policies"))
    for target in targets:
        files = policy_files(target) if target.is_dir() else [target]
        if target.is_dir() and not files:
            problems.append(Problem(file=str(target), key="", message="no policy files (*.toml) here"))
        for file in files:
            try:
                _, data = read_toml(file)
                kind = file_kind(file, data, in_policies_dir=target.is_dir())
                if not data:
                    raise UserError([Problem(file=str(file), key="", message=f"is empty; {EMPTY_ADVICE[kind]}")])
                if kind == "policy":
                    policies.append(load_policy(file))
                    continue
                settings = load_settings(file)
                problems.extend(preflight.problems(settings, file))
                configs.append((settings, file))
                if not paths and not settings.policies_dir.is_dir():  # as `run` says it
                    problems.append(
                        preflight.Origin.of(file).problem(
                            ("policies_dir",), f"no such policies directory: {settings.policies_dir}"
                        )
                    )
                elif not paths and not policy_files(settings.policies_dir):
                    pass  # none yet (setup without a mentor): `run` waits for the first, and `check` says so
                elif not paths:  # the default run also checks the policies the config points at
                    more, found, _ = _check_paths((settings.policies_dir,), None)
                    policies.extend(more)
                    problems.extend(found)
            except UserError as error:
                problems.extend(error.problems)
    problems.extend(check_unique_addresses(policies))
    return policies, problems, configs


EMPTY_ADVICE = {
    "policy": "a policy needs at least [mentor] with name, addresses and timezone (see policies/rivera.toml)",
    "config": "a config needs at least [student] and [imap]: `mentor-agent setup` writes one (see docs/setup.md)",
}


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--config", type=click.Path(path_type=Path), help="Config file (default: the XDG config file).")
@click.option(
    "--connect",
    is_flag=True,
    help="Also log in to IMAP and SMTP and show the folders and server features the agent would use "
    "(sends nothing, changes nothing).",
)
@friendly
def check(paths: tuple[Path, ...], config: Path | None, connect: bool) -> None:
    """Validate the config and the policy files (files or directories), as `run` judges them at start.

    With no PATHS: the config file and the policies directory it names. Exit status 78 when a file is wrong
    or --connect's login is refused (or TLS cannot work), 69 when a server cannot be reached."""
    policies, problems, configs = _check_paths(paths, config)
    if problems:
        print_problems(UserError(problems))
        sys.exit(EX_CONFIG)
    names = ", ".join(f"{p.name} ({p.path})" for p in policies) or "none"
    click.echo(
        f"ok: {len(configs)} config file(s), {len(policies)} polic{'y' if len(policies) == 1 else 'ies'}: {names}"
    )
    for loaded in policies:  # her replies come from her own address: a tagged one alone matches none of them
        listed = loaded.policy.mentor.addresses
        for address in listed:
            local, _, domain = address.partition("@")
            bare = f"{local.split('+', 1)[0]}@{domain}"
            if "+" in local and bare not in listed:
                click.echo(
                    f"warning: {loaded.path}: mentor.addresses: {address} has a +tag; her replies come from her "
                    f"own address and count only if it is listed: add {bare} too",
                    err=True,
                )
    folders = [p for p in paths if p.is_dir()] or [settings.policies_dir for settings, _ in configs]
    for unread in {found for folder in folders for found in _unread_policies(folder)}:
        click.echo(f"warning: {unread} looks like a policy but is not read: only files named *.toml are", err=True)
    if not paths and not policies and configs:
        directory = configs[0][0].policies_dir
        click.echo(f"no policy yet in {directory}: `run` waits for one (mentor-agent setup --mentor-name NAME)")
    if not connect:
        return
    if not configs:
        raise UserError(
            [
                Problem(
                    file="",
                    key="--connect",
                    message="needs a config file (give it with --config, or name it among PATHS)",
                )
            ]
        )
    from agent.daemon.probe import connect as probe

    for settings, file in configs:
        report = probe(settings, file)
        click.echo("\n".join(report.lines))
        if report.problems:
            print_problems(UserError(report.problems))
            sys.exit(EX_CONFIG)


# -- simulate ---------------------------------------------------------------------------------------------------


def _local_zone() -> tzinfo:
    zone = datetime.now().astimezone().tzinfo
    assert zone is not None
    return zone


def _table(outcomes: list[Outcome], mentor_zone: tzinfo, student_zone: tzinfo) -> str:
    def when(moment: datetime | None, zone: tzinfo) -> str:
        return moment.astimezone(zone).strftime("%a %d %b %H:%M %Z") if moment else "held"

    rows = [("id", "subject", "dropped", "goes (mentor)", "goes (you)", "digest", "why")]
    for o in outcomes:
        subject = o.subject if len(o.subject) <= 32 else o.subject[:31] + "…"
        rows.append(
            (
                o.id,
                subject,
                when(o.dropped, mentor_zone),
                when(o.sent_at, mentor_zone),
                when(o.sent_at, student_zone),
                o.digest or "",
                o.reason,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(6)]
    lines = []
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row[:6], widths, strict=True)) + "  " + row[6])
        if index == 0:
            lines.append("  ".join("-" * width for width in widths) + "  ---")
    return "\n".join(lines)


@main.command(name="simulate")
@click.argument("policy_file", required=False, type=click.Path(path_type=Path))
@click.argument("events_file", required=False, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="JSON Lines: one object per send event, in input order.")
@click.option("--student-tz", help="Your time zone for the table (default: this machine's).")
@friendly
def simulate_command(policy_file: Path | None, events_file: Path | None, as_json: bool, student_tz: str | None) -> None:
    """What happens if you write these? Run a policy over events, no network needed.

    With no arguments: the built-in example (Dr. Rivera's policy and a realistic week)."""
    from agent.rules.simulate import load_events, read_events, simulate  # not loaded by `run`

    examples = resources.files("agent") / "examples"
    loaded = load_policy(policy_file or Path(str(examples / "rivera.toml")))
    if events_file is None:
        events = read_events((examples / "week.jsonl").read_text(encoding="utf-8").splitlines(), "week.jsonl")
    else:
        events = load_events(events_file)
    outcomes = simulate(loaded.policy, events)
    zone = loaded.policy.zone
    if as_json:
        for outcome in outcomes:
            click.echo(json.dumps(outcome.as_json(zone), ensure_ascii=False))
        return
    try:
        student_zone = zone_named(student_tz) if student_tz else _local_zone()
    except ValueError as error:
        raise UserError([Problem(file="--student-tz", key="", message=str(error))]) from None
    click.echo(f"{loaded.name} ({zone.key}) — policy {loaded.path.name}, {len(outcomes)} message(s)\n")
    click.echo(_table(outcomes, zone, student_zone))


@main.command()
@click.option("--config", type=click.Path(path_type=Path), help="Config file (default: the XDG config file).")
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
@click.option("--json-logs", is_flag=True, help="One JSON object per log line.")
@friendly
def run(config: Path | None, log_level: str, json_logs: bool) -> None:
    """Run the daemon: watch the Outbox, keep the agreements, send."""
    from agent.cli.collector import collector_held

    with collector_held():
        from agent.daemon.service import run_daemon
    from agent.logs import setup_logging

    setup_logging(log_level.upper(), json=json_logs)
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        settings = load_settings(config, required=True)
        code = run_daemon(settings, config or default_config_path())
    except UserError as error:
        print_problems(error)
        sys.exit(EX_CONFIG)  # the unit's RestartPreventExitStatus: restarting cannot fix a config mistake
    sys.exit(code)


@main.command()
@click.option("--config", type=click.Path(path_type=Path), help="Config file (default: the XDG config file).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@friendly
def status(config: Path | None, as_json: bool) -> None:
    """What went out to each mentor against the limits, what waits and when it goes."""
    import os

    from agent.rules.policy import PolicyBook, load_policies
    from agent.store.status import not_started, read_status, render

    settings = load_settings(config, required=True)  # none yet: the error says to run `setup`
    if not settings.ledger_path.exists():  # set up, never run: not an error, the next step
        data, text = not_started(settings.state_dir, config, datetime.now().astimezone())
        click.echo(json.dumps(data, indent=2, ensure_ascii=False) if as_json else text)
        return
    data = read_status(PolicyBook(load_policies(settings.policies_dir)), settings.ledger_path)
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    click.echo(render(data, color=color, zone=settings.student.zone))


@main.command()
@click.argument("message_id")
@click.option("--config", type=click.Path(path_type=Path), help="Config file (default: the XDG config file).")
@friendly
def release(message_id: str, config: Path | None) -> None:
    """Send a held message now anyway (as flagging it in Scheduled does). ID as `status` shows it."""
    from agent.cli.steering import act

    click.echo(
        act(load_settings(config, required=True), str(config or default_config_path()), message_id, release=True)
    )


@main.command()
@click.argument("message_id")
@click.option("--config", type=click.Path(path_type=Path), help="Config file (default: the XDG config file).")
@friendly
def cancel(message_id: str, config: Path | None) -> None:
    """Cancel a held message (as deleting it from Scheduled does). ID as `status` shows it."""
    from agent.cli.steering import act

    click.echo(
        act(load_settings(config, required=True), str(config or default_config_path()), message_id, release=False)
    )


# Commands in their own modules load when used: `run` imports none of msal, google-auth, requests, dnspython,
# pymap, tomlkit (tests/test_import_graph.py).
main.add_lazy(("slots", "propose", "withdraw"), "agent.cli.meetings:register")
main.add_lazy(("login",), "agent.cli.login:register")
main.add_lazy(("agree",), "agent.cli.agree:register")
main.add_lazy(("demo",), "agent.demo.week:register")
main.add_lazy(("setup",), "agent.cli.setup:register")
