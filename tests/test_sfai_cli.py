"""The tests' ``run_sfai`` (a command forked from a process with SFAI's modules imported) answers what a plain
``sfai`` process answers: the same exit code, standard output and error, files and working directory."""

from __future__ import annotations

import os
import subprocess

from tests.sfai_cli import SFAI, _the_helper, run_sfai


def plain(*args: str, env: dict, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([SFAI, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_a_forked_command_answers_as_a_plain_one(sfai_env, tmp_path):
    (tmp_path / "rows.csv").write_text("a,b\n1,2\n")
    commands = [
        ("--version",),
        ("tenant", "create", "acme", "--ksic", "C29", "-m", "quality"),
        ("tenant", "list", "--json"),
        ("tenant", "show", "nosuch"),  # an error: one line, exit 1
        ("no-such-command",),  # typer's usage error: exit 2
        ("usage", "export", "--output", "usage.csv"),  # a file in the working directory
        ("predict", "failure", "--dataset", "ai4i", "--input", "rows.csv", "--output", "out.csv"),
    ]
    helper = _the_helper()
    served = helper.served
    for args in commands:
        forked = run_sfai(*args, env=sfai_env, cwd=tmp_path)
        if args[:2] == ("tenant", "create"):  # made once: the plain run is refused as a repeat
            assert forked.returncode == 0 and forked.stdout == "acme\n", forked.stderr
            continue
        if args[0] == "usage":
            made = (tmp_path / "usage.csv").read_text()
            (tmp_path / "usage.csv").unlink()
        same = plain(*args, env=sfai_env, cwd=tmp_path)
        assert (forked.returncode, forked.stdout, forked.stderr) == (same.returncode, same.stdout, same.stderr), args
        if args[0] == "usage":
            assert (tmp_path / "usage.csv").read_text() == made
    assert helper.served == served + len(commands)  # each answered by a fork, not a process of its own
    codes = [run_sfai(*args, env=sfai_env, cwd=tmp_path).returncode for args in commands[3:5]]
    assert codes == [1, 2]
    assert "Traceback" not in run_sfai("tenant", "show", "nosuch", env=sfai_env).stderr


def test_the_commands_environment_is_its_own(sfai_env, tmp_path):
    """A command sees the environment it was given, not the helper's nor the one before it."""
    other = tmp_path / "other-home"
    env = {**sfai_env, "SFAI_HOME": str(other), "SFAI_DATABASE_URL": f"sqlite:///{other / 'sfai.db'}"}
    assert run_sfai("tenant", "create", "beta", "--ksic", "C24", env=env).returncode == 0
    assert run_sfai("tenant", "list", env=env).stdout.startswith("beta\t")
    assert "beta" not in run_sfai("tenant", "list", env=sfai_env).stdout
    assert os.environ.get("SFAI_HOME") != str(other)  # the test's own process is untouched
