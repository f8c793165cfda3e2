"""Every leakctl verb with bad arguments (issue 12): the click command tree is walked and each
command is run with an unknown option, an unexpected extra argument, and its required
parameters filled with garbage (`--org does-not-exist`, a garbage positional). Each prints ONE
line on stderr (`leakctl: error: ...`), never a traceback, and exits non-zero — usage errors
included (exit 2)."""
from __future__ import annotations

import signal

import click
import pytest

from leakhub import cli
from leakhub.core.config import set_config

TIMEOUT_S = 30


def commands(cmd=cli.cli, path=()):
    """(path, command) for every command that can run: leaves, and groups that run without a
    subcommand (`leakctl setup`, `leakctl status`)."""
    if isinstance(cmd, click.Group):
        if path and cmd.invoke_without_command:
            yield path, cmd
        for name, sub in sorted(cmd.commands.items()):
            yield from commands(sub, path + (name,))
    else:
        yield path, cmd


COMMANDS = list(commands())


def garbage_args(cmd) -> list[str]:
    args, positional = [], []
    for p in cmd.params:
        if isinstance(p, click.Option):
            if "--org" in p.opts:
                args += ["--org", "does-not-exist"]
            elif p.required:
                if isinstance(p.type, click.Choice):
                    value = p.type.choices[0]
                elif isinstance(p.type, (click.types.IntParamType, click.types.FloatParamType)):
                    value = "-1"
                else:
                    value = "garbage\u00e4"
                args += [p.opts[0], value]
        elif isinstance(p, click.Argument) and p.required:
            positional.append("/nonexistent/garbage\u00e4")
    return args + positional


def run(capsys, argv) -> tuple[int, str]:
    def alarm(*_):
        raise TimeoutError(f"leakctl {' '.join(argv)} took more than {TIMEOUT_S} s")
    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(TIMEOUT_S)
    try:
        cli.main(list(argv))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    err = capsys.readouterr().err
    # JSON log lines (the application's logger) are not the command's message.
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith('{"ts"')]
    return code, "\n".join(lines)


def test_the_tree_is_walked():
    names = {" ".join(p) for p, _ in COMMANDS}
    assert {"import leaks", "device add", "backup restore", "user invite", "setup",
            "status"} <= names and len(names) >= 35


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=[" ".join(p) for p, _ in COMMANDS])
def test_bad_arguments_give_one_line_and_a_non_zero_exit(app, config, capsys, path,
                                                          monkeypatch):
    set_config(config)
    monkeypatch.delenv("LEAKHUB_DEBUG", raising=False)
    cmd = dict(COMMANDS)[path]
    cases = [list(path) + ["--no-such-option"],
             list(path) + garbage_args(cmd) + ["extra-garbage"]]
    if any(isinstance(p, click.Argument) for p in cmd.params) or any(
            isinstance(p, click.Option) and (p.required or "--org" in p.opts)
            for p in cmd.params):
        cases.append(list(path) + garbage_args(cmd))
    for argv in cases:
        code, err = run(capsys, argv)
        assert code != 0, (argv, err)
        assert "Traceback" not in err, (argv, err)
        assert len(err.splitlines()) == 1 and err.startswith("leakctl: error: "), (argv, err)
