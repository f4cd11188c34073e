"""``mentor-agent setup``: from an e-mail address to a tested config, the agent's folders and a first policy.

1. who you are (address, name, time zone); 2. the servers (:mod:`agent.cli.setup_account`: presets, the domain's
autoconfig, SRV records, else questions); 3. signing in (OAuth2 or a password kept out of the config);
4. the config is checked as ``check`` checks it, shown as a diff when one exists, and only then written (0600),
after a login to IMAP and SMTP as ``check --connect`` does and the folders are made as ``run`` makes them;
5. the first mentor's policy (:mod:`agent.cli.setup_policy`; without a terminal checked before step 4 writes
anything). ``--systemd`` then writes the user unit.
Every question has a flag; ``--yes`` (or no terminal) asks nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from agent.cli.answer_checks import address_problem, bare_address, local_zone_name, zone_problem
from agent.cli.prompts import Asker
from agent.cli.setup_account import (
    AS_IT_IS,
    ServerAnswers,
    SignIn,
    SignInAnswers,
    SignInFailed,
    choose_servers,
    sign_in,
)
from agent.cli.setup_door import CHOICES, choose_client, open_star_door, opens_star_door, show_steps
from agent.cli.setup_files import as_written, commit, draft_beside, may_replace
from agent.cli.setup_policy import PolicyDraft, ask_policy, given_policy_problems, policies_dir, write_policy
from agent.config.presets import PRESETS
from agent.config.settings import Settings, default_config_path, load_settings
from agent.config.writer import diff, merged, render_config
from agent.errors import LoginRefused, Problem, SignInNeeded, UserError
from agent.rules.policy import read_toml

# -- the steps -------------------------------------------------------------------------------------------------------


def account(ask: Asker, o: dict[str, Any], config: Path, existing: dict[str, Any]) -> tuple[dict[str, Any], SignIn]:
    """Steps 1-3: the changes to the config's data, and how to store the secret once they are agreed."""
    student = existing.get("student", {}) if isinstance(existing.get("student"), dict) else {}
    address = bare_address(
        ask.text("--address", o["address"], "Your e-mail address", student.get("address"), address_problem)
    )
    default_name = student.get("name") or address.split("@")[0].replace(".", " ").title()
    name = ask.text("--name", o["name"], "Your name (as mentors know you)", default_name)
    zone = ask.text(
        "--timezone", o["timezone"], "Your time zone", student.get("timezone") or local_zone_name(), zone_problem
    )
    servers = ServerAnswers(
        o["imap_host"], o["imap_port"], o["imap_security"], o["smtp_host"], o["smtp_port"], o["smtp_security"],
        o["provider"], o["autoconfig_url"], o["dns_server"],
    )  # fmt: skip
    found = choose_servers(ask, servers, address, existing)
    old_imap = existing.get("imap", {}) if isinstance(existing.get("imap"), dict) else {}
    username = ask.text("--username", o["username"], "User name for IMAP and SMTP", old_imap.get("username") or address)
    given_state = Path(o["state_dir"]).expanduser().resolve() if o["state_dir"] else None
    state_dir = given_state or (load_settings(config) if config.exists() else Settings()).state_dir
    signing = SignInAnswers(
        o["auth"], o["oauth2_client_id"], o["oauth2_client_file"], o["oauth2_tenant"], o["password_command"],
        o["password_file"], o["store"], o["oauth2_authority"],
    )  # fmt: skip
    signed = sign_in(ask, signing, found, username=username, config=config, state_dir=state_dir, existing=existing)
    smtp_user = o["smtp_username"] if o["smtp_username"] is not None else username
    section = signed.keys
    changes: dict[str, Any] = {
        "policies_dir": existing.get("policies_dir", "policies"),
        "student": {"name": name, "address": address, "timezone": zone},
        "imap": {"host": found.imap.host, "port": found.imap.port, "security": found.imap.security}
        | {"username": username}
        | section,
        "smtp": {"host": found.smtp.host, "port": found.smtp.port, "security": found.smtp.security}
        | {"username": smtp_user}
        | (section if smtp_user else dict.fromkeys(section)),
    }
    if given_state:
        changes["state_dir"] = str(given_state)
    if found.source != AS_IT_IS:  # new servers: their provider's limits ("auto": found from the host)
        changes["smtp"]["provider"] = None if found.provider == "auto" else found.provider
    if o["ca_file"]:
        changes["imap"]["ca_file"] = changes["smtp"]["ca_file"] = str(Path(o["ca_file"]).expanduser().resolve())
    if o["outbox"]:
        changes["imap"]["folders"] = {"outbox": o["outbox"]}
    return changes, signed


def write_config(
    ask: Asker,
    config: Path,
    data: dict[str, Any],
    signed: SignIn,
    *,
    force: bool,
    connect: bool,
    flags: dict[str, str] | None = None,
) -> Settings:
    """Step 4: check, show, log in, make the folders, write."""
    from agent.daemon import preflight
    from agent.daemon.probe import connect as probe
    from agent.daemon.probe import create_folders

    text = render_config({k: v for k, v in data.items() if v is not None})
    with draft_beside(config, text) as draft:
        try:
            settings = load_settings(draft)
            problems = preflight.problems(settings, draft, signed_in=False)
        except UserError as error:
            raise as_written(error, draft, config, flags) from None
        if problems:
            raise as_written(UserError(problems), draft, config, flags)
        if not may_replace(ask, config, text, force):
            raise UserError([Problem(str(config), "", "left as it was")])
        try:
            signed.store()
            if connect and (problems := preflight.problems(settings, draft)):  # now with the grant it stored
                raise UserError(problems)
            if connect:
                ask.say("Logging in to IMAP and SMTP as the agent will ...")
                lines = probe(settings, draft).lines[:-1]  # not its last: "nothing was changed" (folders come next)
                ask.say("\n".join("  " + line.replace("will be created by `run`", "missing") for line in lines))
                created = create_folders(settings, draft)
                ask.say(
                    f"Created the folders: {', '.join(created)}" if created else "The agent's folders are all there."
                )
            commit(draft, config)
        except BaseException as error:  # a refused login, Ctrl-C: the secret stored for this config goes too
            signed.undo()
            if isinstance(error, UserError):
                raise as_written(error, draft, config, flags) from None
            raise
    ask.say(f"Wrote {config} (only you can read it).")
    return load_settings(config)


def _write_signed_in(
    ask: Asker, config: Path, data: dict[str, Any], signed: SignIn, *, force: bool, connect: bool, flags: dict[str, str]
) -> Settings:
    """:func:`write_config`; a password the server refuses is asked for again (a typo), and a sign-in that did
    not finish (a code that expired) is offered again, a few times — in a terminal."""
    for attempt in range(1, 4):
        try:
            return write_config(ask, config, data, signed, force=force, connect=connect, flags=flags)
        except SignInFailed as error:
            if not ask.interactive or attempt == 3:
                raise
            ask.say(f"{error}\nNothing was written.")
            if not ask.confirm("--auth", None, "Try to sign in again?", True):
                raise
        except LoginRefused as error:
            if isinstance(error, SignInNeeded):
                raise
            if signed.again is None or not ask.interactive or attempt == 3:
                check = " and ".join(("--username", *([signed.source] if signed.source else [])))
                raise LoginRefused(f"{error}\nnothing was written: check {check}") from None
            ask.say(
                f"{error}\nNothing was written. Type the password again (or Ctrl-C to stop and check the user name)."
            )
            signed = signed.again()
    raise AssertionError("unreachable")


def setup(o: dict[str, Any]) -> None:
    interactive = not o["yes"] and sys.stdin.isatty()
    ask = Asker(interactive)
    config: Path = o["config"] or default_config_path()
    if o["systemd"] and not o["address"]:  # `setup --systemd` alone: the unit for the config as it is
        systemd(ask, config, force=o["force"])
        return
    existing: dict[str, Any] = read_toml(config)[1] if config.exists() else {}
    if existing:
        ask.say(f"{config} exists: your answers change it, and you see the changes before they are written.")
    given_policy_problems(o)  # a bad answer given as a flag stops setup before anything is written
    changes, signed = account(ask, o, config, existing)
    client, door_changes = choose_client(ask, o, existing)
    data = merged(merged(existing, changes), door_changes)
    policy: PolicyDraft | None = None
    if not ask.interactive:  # nothing to ask: every answer is checked before the config is written
        policy = ask_policy(ask, o, policies_dir(config, data), changes["student"]["timezone"])
        if policy is not None and not o["force"]:
            may_replace(ask, policy.target, policy.text, force=False)  # would need --force: fails before writing
    flags = {"imap.folders.outbox": "--outbox"} if o["outbox"] else {}  # a problem with it names the flag
    settings = _write_signed_in(ask, config, data, signed, force=o["force"], connect=not o["no_connect"], flags=flags)
    # At once: a config whose policies folder is missing is one `run` refuses (a Ctrl-C in the policy questions).
    settings.policies_dir.mkdir(parents=True, exist_ok=True)  # `run` waits in it for a first policy
    if ask.interactive:  # asked once the account works, each answer checked as it is typed
        policy = ask_policy(ask, o, settings.policies_dir, settings.student.timezone)
    if policy is not None:
        write_policy(ask, policy, force=o["force"])
    star = opens_star_door(door_changes, existing)
    if star is not None and not o["no_connect"]:  # without a connection the daemon's first pass keeps the baseline
        open_star_door(ask, settings, config, again=star)
    if client is not None:
        show_steps(ask, client, settings)
    start = o["systemd"] or ask.confirm("--systemd", None, "Run it as a systemd user service now?", False)
    if start:
        systemd(ask, config, force=o["force"])
    else:
        option = "" if config == default_config_path() else f" --config {config}"
        ask.say(f"Start it with: mentor-agent run{option}   (or: mentor-agent setup --systemd{option})")


def systemd(ask: Asker, config: Path, *, force: bool) -> None:
    from agent.cli import systemd as unit

    settings = load_settings(config, required=True)
    unit.install(
        config,
        settings.state_dir,
        say=ask.say,
        confirm=lambda question: force or ask.confirm("--force", None, question, False),
        show_diff=diff,
    )


PRESET_KEYS = sorted(PRESETS)


def register(group: click.Group) -> None:
    from agent.cli.support import friendly

    options = [
        click.option("--config", type=click.Path(path_type=Path), help="Config file to write (default: the XDG one)."),
        click.option("--address", help="Your e-mail address."),
        click.option("--name", help="Your name, as your mentors know you."),
        click.option("--timezone", help="Your IANA time zone (default: this machine's)."),
        click.option("--provider", type=click.Choice(PRESET_KEYS), help="Use a provider's servers, without looking."),
        click.option("--imap-host"),
        click.option("--imap-port", type=int),
        click.option("--imap-security", type=click.Choice(["tls", "starttls", "plain"])),
        click.option("--smtp-host"),
        click.option("--smtp-port", type=int),
        click.option("--smtp-security", type=click.Choice(["tls", "starttls", "plain"])),
        click.option("--username", help="User name for IMAP and SMTP (default: your address)."),
        click.option("--smtp-username", help='SMTP user name, if not the same ("" for a server without login).'),
        click.option("--ca-file", help="A private CA's certificate (PEM) for both servers."),
        click.option("--auth", type=click.Choice(["oauth2", "password"]), help="How to sign in."),
        click.option("--oauth2-client-id", help="Microsoft: the app registration's client id."),
        click.option("--oauth2-client-file", type=click.Path(path_type=Path), help="Google: the OAuth client JSON."),
        click.option("--oauth2-tenant", help='Microsoft: "organizations", "consumers" or a tenant id.'),
        click.option("--oauth2-authority", help="The sign-in server's base URL, for a sovereign cloud (e.g. "
                     "https://login.microsoftonline.us) or a test server (default: the provider's own)."),
        click.option("--password-command", help="A command that prints the password (kept as is, nothing stored)."),
        click.option("--password-file", type=click.Path(path_type=Path), help="Read the password from this file."),
        click.option("--store", type=click.Choice(["keyring", "file"]), help="Where the password goes."),
        click.option("--state-dir", help="Where the ledger lives (default: the XDG state directory)."),
        click.option("--outbox", help='The folder you drop messages in (default "Mentor Outbox").'),
        click.option("--mentor-name", help="Write a policy for this mentor."),
        click.option("--mentor-address", multiple=True, help="The mentor's address (again for more)."),
        click.option("--mentor-timezone", help="The mentor's IANA time zone (default: yours)."),
        click.option("--per-day", type=int, help="At most this many messages a day (default 1)."),
        click.option("--per-week", type=int, help="At most this many a week (default 3)."),
        click.option("--window", multiple=True, help='When mail may arrive, e.g. "Mon-Fri 08:00-17:00".'),
        click.option("--client", type=click.Choice(CHOICES), help="Your mail program: setup prints its door's steps."),
        click.option("--submission-port", type=int, help="Where mentor-agent takes your program's Send (1587)."),
        click.option("--no-connect", is_flag=True, help="Do not log in or create folders (write the files only)."),
        click.option("--systemd", is_flag=True, help="Write the systemd user unit and start it "
                     "(alone: for the config as it is, nothing asked)."),
        click.option("--force", is_flag=True, help="Write over files that would change, without asking."),
        click.option("-y", "--yes", is_flag=True, help="Ask nothing: defaults, else fail naming the missing flag."),
        click.option("--autoconfig-url", default="", hidden=True),  # tests: a loopback autoconfig server
        click.option("--dns-server", default="", hidden=True),  # tests: a loopback DNS server, HOST:PORT
    ]  # fmt: skip

    def command(**o: Any) -> None:
        """Set up mentor-agent for your mailbox: servers, sign-in, folders, the config and a first policy.

        Asks what it needs (every question also has a flag). Run it again to change the answers: it shows the
        changes and asks before writing."""
        setup(o)

    for option in reversed(options):
        command = option(command)
    group.command(name="setup")(friendly(command))
