"""Deploying the MicroPython firmware: the .mpy build (real mpy-cross) and its manifest, and
the deploy with the real mpremote to a MicroPython board on a pseudo-terminal
(tests/micropython_device.py: MicroPython 1.27 behind the board's REPL).

Skipped locally when Node.js or the npm package is missing; under CI=true those fail instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from micropython_device import MicroPythonDevice, available

from hostctl import fwdeploy
from hostctl.errors import UserError

WHY = available()
needs_device = pytest.mark.skipif(WHY is not None and os.environ.get("CI", "").lower() != "true",
                                  reason=WHY or "")


def mpremote(port: str, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "mpremote", "connect", port, *args],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("build")
    return out, fwdeploy.build(out)


# -- the build ---------------------------------------------------------------------------------


def test_every_module_is_compiled_and_main_stays_source(built):
    out, manifest = built
    sources = sorted(p.name for p in fwdeploy.FIRMWARE_DIR.glob("*.py"))
    expected = sorted(n if n in fwdeploy.SOURCE_ONLY else n[:-3] + ".mpy" for n in sources)
    assert sorted(manifest.files) == expected
    assert "main.py" in manifest.files and "tr_board.mpy" in manifest.files
    for name in manifest.files:
        if name.endswith(".mpy"):
            head = (out / name).read_bytes()[:3]
            # .mpy header: 'M', the .mpy version, then flags: no native architecture (bytecode only)
            assert (head[0], head[1], head[2] >> 2) == (ord("M"), fwdeploy.TARGET_MPY[0], 0), name


def test_the_manifest_lists_each_files_hash_and_one_hash_over_them(built):
    out, manifest = built
    for name, digest in manifest.files.items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest
    on_disk = json.loads((out / fwdeploy.MANIFEST_NAME).read_text())
    assert on_disk["hash"] == manifest.hash and on_disk["files"] == manifest.files
    assert on_disk["firmware_version"] == fwdeploy.firmware_version()
    lines = "".join(f"{n} {d}\n" for n, d in sorted(manifest.files.items()))
    assert manifest.hash == hashlib.sha256(lines.encode()).hexdigest()


def test_the_same_sources_build_the_same_hash_and_a_change_changes_it(built, tmp_path):
    _, manifest = built
    src = tmp_path / "src"
    src.mkdir()
    for p in fwdeploy.FIRMWARE_DIR.glob("*.py"):
        (src / p.name).write_bytes(p.read_bytes())
    again = fwdeploy.build(tmp_path / "again", src)
    assert again.hash == manifest.hash
    rule = src / "tr_rule.py"
    rule.write_text(rule.read_text() + "\nEXTRA = 1\n")
    changed = fwdeploy.build(tmp_path / "changed", src)
    assert changed.hash != manifest.hash
    assert [n for n in manifest.files if manifest.files[n] != changed.files[n]] == ["tr_rule.mpy"]


def test_a_module_that_does_not_compile_is_named(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "tr_board.py").write_text("FW_VERSION = (1, 2, 0)\n")
    (src / "broken.py").write_text("def f(:\n")
    with pytest.raises(UserError, match=r"broken\.py: mpy-cross refused it: .*SyntaxError"):
        fwdeploy.build(tmp_path / "out", src)


# -- the deploy ----------------------------------------------------------------------------------


@needs_device
def test_deploy_copies_the_build_verifies_it_removes_stale_sources_and_records_it(built, tmp_path):
    out, manifest = built
    record = tmp_path / "deployments.jsonl"
    with MicroPythonDevice(unique_id="0123456789abcdef") as board:
        # an earlier deploy of the sources: tr_rule.py would shadow tr_rule.mpy at import
        mpremote(board.port, "fs", "cp", str(fwdeploy.FIRMWARE_DIR / "tr_rule.py"), ":tr_rule.py")
        done = fwdeploy.deploy(board.port, out, manifest, record=record)
        assert done.removed == ("tr_rule.py",)
        assert done.unique_id == "0123456789abcdef" and done.micropython == "1.27.0"
        listing = mpremote(board.port, "fs", "ls")
        for name in [*manifest.files, fwdeploy.MANIFEST_NAME]:
            assert name in listing
        assert "tr_rule.py" not in listing and fwdeploy.SAFE_MODE_FILE not in listing
        for name in ("tr_board.mpy", "main.py"):
            sums = mpremote(board.port, "fs", "sha256sum", f":{name}")
            assert manifest.files[name] in sums
        # the compiled firmware runs on the board's MicroPython
        out_text = mpremote(board.port, "exec", "import tr_rule, tr_board; print(tr_rule.__file__, tr_board.FW_VERSION)")
        assert "tr_rule.mpy (1, 2, 0)" in out_text.replace("/", "")
    entry = json.loads(record.read_text().splitlines()[-1])
    assert entry["hash"] == manifest.hash and entry["unique_id"] == "0123456789abcdef"
    assert entry["port"] == board.port and entry["firmware_version"] == manifest.firmware_version


@needs_device
def test_a_file_that_differs_on_the_board_fails_verification_and_leaves_safe_mode_on(built, tmp_path):
    out, manifest = built
    tampered = tmp_path / "tampered"
    tampered.mkdir()
    for p in out.iterdir():
        (tampered / p.name).write_bytes(p.read_bytes())
    (tampered / "tr_rule.mpy").write_bytes((out / "tr_rule.mpy").read_bytes() + b"\x00")
    record = tmp_path / "deployments.jsonl"
    with MicroPythonDevice() as board:
        with pytest.raises(UserError, match=r"verification failed: tr_rule\.mpy differ"):
            fwdeploy.deploy(board.port, tampered, manifest, record=record)
        assert fwdeploy.SAFE_MODE_FILE in mpremote(board.port, "fs", "ls")
    assert not record.exists()


@needs_device
def test_a_board_of_another_mpy_version_is_refused_before_anything_is_copied(built, tmp_path):
    out, manifest = built
    other = fwdeploy.Manifest(manifest.firmware_version, "1.19", (5, 0), manifest.files)
    with MicroPythonDevice() as board:
        with pytest.raises(UserError, match=r"runs MicroPython 1\.27\.0 with \.mpy version 6\.3; this build is "
                                            r"\.mpy 5\.0 \(MicroPython 1\.19\)"):
            fwdeploy.deploy(board.port, out, other, record=tmp_path / "r.jsonl")
        assert "main.py" not in mpremote(board.port, "fs", "ls")


@needs_device
def test_hostctl_firmware_deploy_deploys_to_every_port_in_one_command(tmp_path):
    record = tmp_path / "deployments.jsonl"
    with MicroPythonDevice(unique_id="00000000000000a1") as a, MicroPythonDevice(unique_id="00000000000000a2") as b:
        done = subprocess.run([sys.executable, "-m", "hostctl", "firmware", "deploy", "--port", a.port,
                               "--port", b.port, "--record", str(record)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 2 and "00000000000000a1" in lines[0] and "00000000000000a2" in lines[1]
    assert all("verified" in line for line in lines)
    entries = [json.loads(line) for line in record.read_text().splitlines()]
    assert [e["unique_id"] for e in entries] == ["00000000000000a1", "00000000000000a2"]
    assert entries[0]["hash"] == entries[1]["hash"]


def test_a_port_that_does_not_open_is_one_line_and_a_non_zero_exit(tmp_path):
    done = subprocess.run([sys.executable, "-m", "hostctl", "firmware", "deploy", "--port", str(tmp_path / "ttyACM9"),
                           "--record", str(tmp_path / "r.jsonl")], capture_output=True, text=True)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0 and "ttyACM9: asking the board what it runs" in done.stderr
    assert not (tmp_path / "r.jsonl").exists()


def test_hostctl_firmware_build_writes_the_build_and_prints_its_hash(tmp_path):
    done = subprocess.run([sys.executable, "-m", "hostctl", "firmware", "build", "--out", str(tmp_path / "b")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((tmp_path / "b" / fwdeploy.MANIFEST_NAME).read_text())
    assert manifest["hash"] in done.stdout
    assert Path(tmp_path / "b" / "main.py").exists()
