"""`check` is `run`'s judgement: what the daemon refuses at start, `check` refuses too, with the key (or the
environment variable) and the reason. No servers needed: every refusal here comes before a connection."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from agent.cli.main import main
from agent.config.settings import Folders

ROOT = Path(__file__).parent.parent

CONFIG = """\
policies_dir = "policies"
state_dir = "state"

[student]
name = "Sam Patel"
address = "sam@med.example.edu"
timezone = "America/New_York"

[imap]
host = "127.0.0.1"
port = 1
security = "plain"
username = "sam"
password_command = "{command}"

[imap.folders]
outbox = "{outbox}"

[smtp]
host = "127.0.0.1"
port = 1
security = "plain"
"""


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.upper().startswith("MENTOR_AGENT_") or name == "CREDENTIALS_DIRECTORY":
            monkeypatch.delenv(name)
    yield


def setup(tmp_path: Path, *, outbox: str = "Outbox", command: str = "true", extra: str = "", mode: int = 0o600) -> Path:
    (tmp_path / "policies").mkdir(exist_ok=True)
    (tmp_path / "policies" / "rivera.toml").write_text((ROOT / "policies/rivera.toml").read_text())
    config = tmp_path / "config.toml"
    config.write_text(CONFIG.format(outbox=outbox, command=command) + extra)
    config.chmod(mode)
    return config


def check(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["check", *args], env=env)
    return result.exit_code, result.stdout, result.stderr


def run(config: Path, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = subprocess.run(
        [sys.executable, "-m", "agent", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        cwd=config.parent,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr


def errors(text: str) -> list[str]:
    return sorted(line for line in text.splitlines() if line.startswith("error: "))


# -- folder guards ---------------------------------------------------------------------------------------------


def test_a_good_config_passes_and_counts_itself(tmp_path: Path) -> None:
    code, out, err = check("--config", str(setup(tmp_path)))
    assert code == 0, err
    assert out.startswith("ok: 1 config file(s), 1 policy: Dr. Ana Rivera")


@pytest.mark.parametrize(
    "name",
    [
        "INBOX",
        "inbox",
        "Sent",
        "Sent Items",
        "Sent Messages",
        "[Gmail]/Sent Mail",
        "[Gmail]/All Mail",
        "INBOX.Sent",
        "Drafts",
        "Trash",
        "Deleted Items",
        "Junk",
        "Junk E-mail",
        "Spam",
        "Bin",
        "Archive",
        "All Mail",
        "  sent  items ",
    ],
)
def test_the_outbox_may_not_be_a_folder_of_the_students_own_mail(tmp_path: Path, name: str) -> None:
    config = setup(tmp_path, outbox=name)
    code, out, err = check("--config", str(config))
    assert code == 78 and out == ""
    assert f"error: {config}:17: imap.folders.outbox: {name!r} is your " in err or "is all your mail" in err, err
    assert "use a folder of its own" in err


def test_the_outbox_from_the_environment_is_named_by_its_variable(tmp_path: Path) -> None:
    config = setup(tmp_path)
    code, _, err = check("--config", str(config), env={"MENTOR_AGENT_IMAP__FOLDERS__OUTBOX": "INBOX"})
    assert code == 78
    assert err.startswith(
        "error: MENTOR_AGENT_IMAP__FOLDERS__OUTBOX: 'INBOX' is your INBOX: the agent sends every "
        "message it finds in the Outbox"
    ), err
    assert str(config) not in err  # the file is right; the variable is not


def test_outlooks_own_outbox_name_is_not_refused_here(tmp_path: Path) -> None:
    for name in ("Outbox", "Mentors/Outbox", "outbox"):
        assert check("--config", str(setup(tmp_path, outbox=name)))[0] == 0


@pytest.mark.parametrize(
    ("folders", "key", "message"),
    [
        ({"scheduled": "Mentor Outbox"}, "imap.folders.scheduled", "'Mentor Outbox' is also the outbox folder"),
        ({"sending": "mentor outbox"}, "imap.folders.sending", "'mentor outbox' is also the outbox folder"),
        ({"needs_attention": "Scheduled"}, "imap.folders.needs_attention", "'Scheduled' is also the scheduled folder"),
        ({"scheduled": ""}, "imap.folders.scheduled", 'is empty; name a folder of its own, e.g. "Scheduled"'),
        ({"sending": "  "}, "imap.folders.sending", "is empty"),
        (
            {"sent": "Copies", "scheduled": "copies"},
            "imap.folders.scheduled",
            "'copies' is the folder set as imap.folders.sent",
        ),
        (
            {"notices": "Agent notes", "needs_attention": "Agent notes"},
            "imap.folders.needs_attention",
            "'Agent notes' is the folder set as imap.folders.notices",
        ),
        (
            {"inbox": "Posteingang", "outbox": "Posteingang"},
            "imap.folders.outbox",
            "'Posteingang' is the folder set as imap.folders.inbox",
        ),
        ({"sending": "Trash"}, "imap.folders.sending", "'Trash' is your trash folder"),
    ],
)
def test_the_agents_folders_are_never_empty_one_another_or_the_students(
    folders: dict[str, str], key: str, message: str
) -> None:
    from agent.daemon.preflight import Origin, folder_problems

    found = [str(p) for p in folder_problems(Folders(**folders), Origin(Path("config.toml")))]
    assert any(f"config.toml: {key}: {message}" in p for p in found), found


def test_the_defaults_pass_the_guards() -> None:
    from agent.daemon.preflight import Origin, folder_problems

    assert folder_problems(Folders(), Origin(Path("config.toml"))) == []


def test_a_special_use_folder_is_refused_whatever_its_name() -> None:
    from agent.daemon.preflight import Origin, live_folder_problems

    listing = [((b"\\HasNoChildren", b"\\Archive"), b"/", "Ablage"), ((b"\\HasNoChildren",), b"/", "Outbox")]
    found = [str(p) for p in live_folder_problems(listing, Folders(scheduled="Ablage"), Origin(Path("c.toml")))]
    assert found == [
        "c.toml: imap.folders.scheduled: 'Ablage' is your archive folder on the server (SPECIAL-USE "
        "\\Archive): the agent sends what waits in Scheduled, and takes a message deleted from it as "
        "cancelled, so your own mail would be sent again or moved; use a folder of its own, e.g. "
        '"Scheduled"'
    ]


# -- check says what run says ------------------------------------------------------------------------------------


def _cases(tmp_path: Path) -> dict[str, tuple[Path, dict[str, str], str]]:
    def where(name: str) -> Path:
        directory = tmp_path / name
        directory.mkdir()
        return directory

    return {
        "outbox=INBOX": (setup(where("a"), outbox="INBOX"), {}, "imap.folders.outbox: 'INBOX' is your INBOX"),
        "outbox=Sent by env": (
            setup(where("b")),
            {"MENTOR_AGENT_IMAP__FOLDERS__OUTBOX": "Sent"},
            "MENTOR_AGENT_IMAP__FOLDERS__OUTBOX: 'Sent' is your sent-mail folder",
        ),
        "password readable": (
            setup(where("c"), command="", mode=0o644, extra='password = "hunter2-secret"\n'),
            {},
            "readable by group or others (mode 0644); run chmod 600",
        ),
        "missing program": (
            setup(where("d"), command="pass-that-is-not-installed show mail"),
            {},
            "imap.password_command: command not found: pass-that-is-not-installed",
        ),
        "no credentials": (setup(where("e"), command=""), {}, "no password or token for [imap]"),
        "smtp user, no secret": (
            setup(where("f"), extra='username = "sam"\n'),
            {},
            "smtp.password_command: no password or token for [smtp]",
        ),
        "port by env": (
            setup(where("g")),
            {"MENTOR_AGENT_IMAP__PORT": "nine"},
            "MENTOR_AGENT_IMAP__PORT: not a number",
        ),
    }


def test_run_refuses_at_start_exactly_what_check_refuses(tmp_path: Path) -> None:
    for name, (config, env, expected) in _cases(tmp_path).items():
        code, _, check_err = check("--config", str(config), env=env)
        assert code == 78, (name, check_err)
        assert expected in check_err, (name, check_err)
        assert "hunter2-secret" not in check_err
        run_code, run_output = run(config, env)
        assert run_code == 78, (name, run_output)
        assert errors(run_output) == errors(check_err), name
        assert "connected to" not in run_output and not (config.parent / "state").exists(), name


def test_an_error_in_an_environment_variable_names_it_not_the_correct_file(tmp_path: Path) -> None:
    config = setup(tmp_path)
    code, _, err = check("--config", str(config), env={"MENTOR_AGENT_IMAP__PORT": "nine"})
    assert code == 78
    assert err == "error: MENTOR_AGENT_IMAP__PORT: not a number\n"
    code, _, err = check("--config", str(config), env={"MENTOR_AGENT_IMAP__PROT": "993"})
    assert err == "error: MENTOR_AGENT_IMAP__PROT: unknown setting (did you mean 'port'?)\n"
    code, _, err = check("--config", str(config), env={"MENTOR_AGENT_SMTP__SECURITY": "ssl"})
    assert err == "error: MENTOR_AGENT_SMTP__SECURITY: must be 'tls', 'starttls' or 'plain'\n"
    # A list is written as JSON; anything else was a traceback (pydantic-settings' SettingsError), now it is named.
    code, _, err = check("--config", str(config), env={"MENTOR_AGENT_CALENDAR__BUSY_ICS": "/home/sam/busy.ics"})
    assert code == 78
    assert err.startswith("error: MENTOR_AGENT_CALENDAR__BUSY_ICS: "), err
    assert "Traceback" not in err


def test_the_same_mistake_in_the_file_names_file_line_and_key(tmp_path: Path) -> None:
    config = setup(tmp_path)
    config.write_text(config.read_text().replace("port = 1\nsecurity", 'port = "nine"\nsecurity', 1))
    code, _, err = check("--config", str(config))
    assert code == 78
    line = config.read_text().splitlines().index('port = "nine"') + 1
    assert err == f"error: {config}:{line}: imap.port: not a number\n"


# -- what kind of file it is, and empty ones ------------------------------------------------------------------------


def test_an_empty_file_given_to_check_is_not_ok(tmp_path: Path) -> None:
    (tmp_path / "policies").mkdir()
    empty = tmp_path / "policies" / "chen.toml"
    empty.write_text("# to do\n")
    code, out, err = check(str(empty))
    assert code == 78 and out == ""
    assert f"error: {empty}: is empty; a policy needs at least [mentor]" in err
    code, out, err = check(str(tmp_path / "policies"))
    assert code == 78 and "is empty" in err


def test_a_misspelt_section_is_judged_as_a_policy_and_named(tmp_path: Path) -> None:
    text = (ROOT / "policies/rivera.toml").read_text().replace("[mentor]", "[mentr]")
    for path in (tmp_path / "rivera.toml", tmp_path / "policies" / "rivera.toml"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
        code, _, err = check(str(path))
        assert code == 78
        line = text.splitlines().index("[mentr]") + 1
        assert err == f"error: {path}:{line}: unknown section [mentr] (did you mean [mentor]?)\n", err


def test_a_misspelt_section_of_the_config_is_named_too(tmp_path: Path) -> None:
    config = setup(tmp_path)
    config.write_text(config.read_text().replace("[smtp]", "[smpt]"))
    code, _, err = check(str(config))
    assert code == 78
    line = config.read_text().splitlines().index("[smpt]") + 1
    assert f"error: {config}:{line}: unknown section [smpt] (did you mean [smtp]?)" in err


def test_the_shipped_example_config_passes_when_its_password_program_exists(tmp_path: Path) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "pass").write_text("#!/bin/sh\necho secret\n")
    (fake / "pass").chmod(0o755)
    path = f"{fake}:{os.environ.get('PATH', '')}"
    code, out, err = check(str(ROOT / "policies"), str(ROOT / "config/example.toml"), env={"PATH": path})
    assert code == 0, err
    assert "ok: 1 config file(s), 2 policies" in out
    code, _, err = check(str(ROOT / "config/example.toml"), env={"PATH": str(tmp_path / "nowhere")})
    assert code == 78 and "imap.password_command: command not found: pass" in err


def test_a_missing_policies_directory_is_named_by_its_key(tmp_path: Path) -> None:
    config = setup(tmp_path)
    config.write_text(config.read_text().replace('policies_dir = "policies"', 'policies_dir = "polices"'))
    code, _, err = check("--config", str(config))
    assert code == 78
    assert err == f"error: {config}:1: policies_dir: no such policies directory: {tmp_path / 'polices'}\n"


# -- the guard against the students' own folders, whatever the spelling -------------------------------------------


@given(
    name=st.sampled_from(
        [
            "INBOX",
            "Sent",
            "Sent Items",
            "Sent Messages",
            "Sent Mail",
            "Drafts",
            "Trash",
            "Deleted Items",
            "Junk",
            "Junk E-mail",
            "Spam",
            "Bin",
            "Archive",
            "All Mail",
        ]
    ),
    prefix=st.sampled_from(["", "INBOX.", "INBOX/", "[Gmail]/", "[Google Mail]/"]),
    case=st.lists(st.booleans(), min_size=20, max_size=20),
    pad=st.sampled_from(["", " ", "  "]),
    key=st.sampled_from(["outbox", "scheduled", "sending", "needs_attention"]),
)
def test_every_spelling_of_the_students_own_folders_is_refused(
    name: str, prefix: str, case: list[bool], pad: str, key: str
) -> None:
    from agent.daemon.preflight import Origin, folder_problems

    spelt = "".join(c.upper() if up else c.lower() for c, up in zip(prefix + name, case * 3, strict=False))
    found = folder_problems(Folders(**{key: pad + spelt + pad}), Origin(Path("c.toml")))
    assert [p.key for p in found] == [f"imap.folders.{key}"], (spelt, found)
