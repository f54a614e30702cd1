"""Every command-line argument of ``hostctl`` is checked: a number out of its range, not
finite or not a number, and an input file that is missing, a folder or not text, each end
in one error line and a non-zero exit status, never a traceback or a hang.

The commands and their options are read from the parser itself, so an option added later
without a checked type fails here.
"""

from __future__ import annotations

import argparse

import pytest

from hostctl import argtypes
from hostctl.cli import build_parser, main


def _commands(parser: argparse.ArgumentParser, path=()):
    """(command words, parser) of every leaf command."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
        return
    for name, child in subs[0].choices.items():
        yield from _commands(child, path + (name,))


COMMANDS = dict(_commands(build_parser()))


def _actions(parser):
    return [a for a in parser._actions if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))]


def _numeric(parser):
    return [a for a in _actions(parser) if getattr(a.type, "bounds", None) is not None]


def _label(words, action):
    return " ".join(words) + " " + (action.option_strings[-1] if action.option_strings else action.dest)


def test_the_command_table_is_complete():
    # the commands this test walks; a new command shows up here first
    assert {" ".join(w) for w in COMMANDS} >= {
        "demo", "train", "resume", "eval", "report", "calibrate", "calibration show", "calibration diff",
        "sim solve", "sim teach", "rig check", "rig show", "bus scan", "firmware emulate", "sweep", "watch"}


def test_every_numeric_argument_has_a_checked_type():
    raw = [_label(w, a) for w, p in COMMANDS.items() for a in _actions(p) if a.type in (int, float)]
    assert raw == [], f"arguments parsed as bare int/float, unbounded: {raw}"


NUMERIC = [(w, a) for w, p in COMMANDS.items() for a in _numeric(p)]


def _bad_values(action):
    lo, hi = action.type.bounds
    integer = action.type.__name__ == "integer"
    below = str(lo - 1) if integer else repr(lo - max(1.0, abs(lo)))
    above = str(hi + 1) if integer else repr(hi * 2 + 1)
    return [below, above, "nan", "inf", "-inf", "1e999", "x", ""] + (["1.5", "1e3"] if integer else [])


def _argv(words, parser, action, value):
    argv = list(words)
    positionals = [a for a in _actions(parser) if not a.option_strings]
    if action.option_strings:
        # the option's error comes when it is read, before missing positionals are noticed
        return argv + [f"{action.option_strings[-1]}={value}"]
    # "--" ends the options, so a value such as "-inf" reaches the positional as its value
    return argv + ["--"] + [value if a is action else "1" for a in positionals]


@pytest.mark.parametrize("words,action", NUMERIC, ids=[_label(w, a) for w, a in NUMERIC])
def test_a_number_out_of_range_is_one_error_naming_the_argument(words, action, capsys):
    for value in _bad_values(action):
        with pytest.raises(SystemExit) as exit_:
            main(_argv(words, COMMANDS[words], action, value))
        err = capsys.readouterr().err
        assert exit_.value.code == 2, (value, err)
        # argparse names an option by all its strings (--baud/--baudrate)
        name = "/".join(action.option_strings) if action.option_strings else action.metavar or action.dest
        last = err.strip().splitlines()[-1]
        assert last.startswith(f"hostctl {' '.join(words)}: error: argument {name}"), (value, err)
        assert "Traceback" not in err


def test_the_bounds_are_inclusive_and_parse_what_they_print():
    steps = argtypes.steps
    assert steps("1") == 1 and steps(str(argtypes.MAX_STEPS)) == argtypes.MAX_STEPS
    assert argtypes.seed("0") == 0 and argtypes.seed(str(2**32 - 1)) == 2**32 - 1
    x = argtypes.number(0.0, 10.0, "s", lo_open=True)
    assert x("10") == 10.0 and x("1e-300") == 1e-300
    for bad in ("0", "-0", "10.000001", "nan"):
        with pytest.raises(argparse.ArgumentTypeError):
            x(bad)


# -- input files ------------------------------------------------------------------------------

#: Commands that read a file the user names: (command words, option or None for the first
#: positional, extra arguments that keep the command from doing anything else).
INPUTS = [
    (("train",), None, []),
    (("train",), "--rig", ["xor_gen2"]),
    (("resume",), None, []),
    (("eval",), None, []),
    (("report",), None, []),
    (("watch",), None, ["--once"]),
    (("sim", "solve"), None, []),
    (("rig", "check"), None, []),
    (("sweep",), None, []),
    (("calibrate",), "--rig", ["daq"]),
]


@pytest.fixture
def bad_inputs(tmp_path):
    folder = tmp_path / "a-folder.toml"
    folder.mkdir()
    binary = tmp_path / "binary.toml"
    binary.write_bytes(bytes(range(256)) * 16)
    empty = tmp_path / "empty.toml"
    empty.write_bytes(b"")
    return {"missing": str(tmp_path / "missing.toml"), "folder": str(folder), "binary": str(binary),
            "empty": str(empty)}


@pytest.mark.parametrize("words,option,extra", INPUTS, ids=[" ".join(w) + (f" {o}" if o else "") for w, o, _ in INPUTS])
def test_an_unreadable_input_file_is_one_error_line(words, option, extra, bad_inputs, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for kind, path in bad_inputs.items():
        argv = list(words) + ([option, path] + extra if option else extra[:1] + [path] + extra[1:])
        if words == ("train",) and option is None:
            argv = ["train", path]
        status = main(argv)
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert status != 0, (kind, err)
        assert len(lines) == 1 and lines[0].startswith("hostctl: error: "), (kind, err)
        assert path in lines[0] or path.rsplit("/", 1)[-1] in lines[0], (kind, err)
