"""A mutation campaign over the example files: every field of every file in examples/ set in
turn to hostile values (nan, +-inf, -1, 0, +-1e300, 2^63-1, 1e-300, a string, a boolean, an
empty or huge string, an empty list, the field removed), about 2,600 files.

Each mutated file is first loaded in this process: refused with the file's own error (one
line naming file, field and value) is as it should be; any other exception is a defect. A file
that loads is then run through the command line (``hostctl train``, ``rig check`` or
``sweep``) in a child process limited to 6 GB of address space and 30 s: a traceback, an error
of more than three lines, a run file ``hostctl eval`` cannot read, or 30 s with no run file
begun (a hang in set-up) is a defect. Defects are printed as they are found; a count of each
outcome at the end, and every outcome in ``--json PATH``.

Run it by hand (about 25 minutes on two cores; not part of the test suite)::

    python tests/campaigns/mutate_examples.py [--json results.json] [FILE_STEM ...]
"""
import copy, json, math, os, resource, shutil, signal, subprocess, sys, tempfile, tomllib
from pathlib import Path
import tomli_w

from hostctl.errors import UserError
from hostctl.experiment import ExperimentFileError
from hostctl.rigfile import RigFileError
from hostctl.sweep import SweepFileError
from hostctl.experiment import load_experiment
from hostctl.rigfile import load_rig
from hostctl.sweep import load_sweep, expand
from instruments.sim.netfile import load_network_file, NetworkFileError

EX = Path(__file__).resolve().parents[2] / "examples"
NUM = [math.nan, math.inf, -math.inf, -1, 0, 1e300, -1e300, 2**63 - 1, 1e-300, "x", True]
STR = ["", "x" * 5000, 5, "../../etc/passwd"]


def leaves(d, path=()):
    if isinstance(d, dict):
        for k, v in d.items():
            yield from leaves(v, path + (k,))
    elif isinstance(d, list):
        for i, v in enumerate(d):
            yield from leaves(v, path + (i,))
        yield path, d
    else:
        yield path, d


def setp(d, path, v):
    for k in path[:-1]:
        d = d[k]
    if v is KeyError:
        if isinstance(d, dict):
            del d[path[-1]]
        else:
            del d[path[-1]]
    else:
        d[path[-1]] = v


def values(v):
    if isinstance(v, bool):
        return [3, "yes", KeyError]
    if isinstance(v, (int, float)):
        return NUM + [KeyError]
    if isinstance(v, str):
        return STR + [KeyError]
    if isinstance(v, list):
        return [[], [math.nan] * 3, KeyError]
    return []


def alarm(s):
    def h(*a):
        raise TimeoutError("stage-1 hang")
    signal.signal(signal.SIGALRM, h)
    signal.alarm(s)


def stage2(kind, f, work):
    out = work / "r.h5"
    if out.exists():
        out.unlink()
    if kind == "experiment":
        cmd = ["hostctl", "train", str(f), "--out", str(out), "--quiet"]
    elif kind == "rig":
        cmd = ["hostctl", "rig", "check", str(f)]
    else:
        cmd = ["hostctl", "sweep", str(f), "--out", str(work / "sw"), "--quiet"]
    pre = ["prlimit", "--as=6000000000", "--"]
    try:
        p = subprocess.run(pre + cmd, capture_output=True, text=True, timeout=30, cwd=work)
    except subprocess.TimeoutExpired:
        began = out.exists() or (work / "sw").exists() or kind == "rig"
        return "timeout-running" if began else "HANG"
    if "Traceback" in p.stderr:
        return "TRACEBACK: " + p.stderr.strip().splitlines()[-1][:200]
    if p.returncode != 0:
        lines = [l for l in p.stderr.strip().splitlines() if l.strip()]
        if len(lines) > 3:
            return f"MULTILINE rc={p.returncode}: " + " | ".join(lines[-3:])[:300]
        if kind == "experiment" and out.exists():
            q = subprocess.run(["hostctl", "eval", str(out)], capture_output=True, text=True, timeout=60)
            if "Traceback" in q.stderr:
                return "BADFILE " + q.stderr.strip().splitlines()[-1][:200]
        return f"refused-late rc={p.returncode}: " + " | ".join(lines)[:200]
    return "ran"


def main():
    resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))
    import argparse

    parser = argparse.ArgumentParser(description="mutate every field of the example files")
    parser.add_argument("--json", metavar="PATH", help="write every outcome here")
    parser.add_argument("only", nargs="*", metavar="FILE_STEM", help="only these files (e.g. xor_gen2)")
    args = parser.parse_args()
    only = args.only or None
    files = []
    for f in sorted(EX.glob("*.toml")):
        text = f.read_text()
        if f.name.startswith("rig"):
            kind = "rig"
        elif f.name.startswith("sweep"):
            kind = "sweep"
        elif "[task]" in text:
            kind = "experiment"
        else:
            kind = "network"
        files.append((f, kind))
    results = {}
    for f, kind in files:
        if only and f.stem not in only:
            continue
        data = tomllib.loads(f.read_text())
        work = Path(tempfile.mkdtemp(prefix="mut-"))
        for g in EX.iterdir():
            shutil.copy(g, work / g.name) if g.is_file() else None
        for path, v in list(leaves(data)):
            for bad in values(v):
                d = copy.deepcopy(data)
                try:
                    setp(d, path, bad)
                    text = tomli_w.dumps(d, multiline_strings=False)
                except Exception as e:
                    continue
                mf = work / f.name
                mf.write_text(text)
                key = f"{f.name}:{'.'.join(map(str, path))}={bad if bad is not KeyError else '<missing>'!r}"[:160]
                alarm(20)
                try:
                    if kind == "experiment":
                        load_experiment(mf)
                    elif kind == "rig":
                        load_rig(mf)
                    elif kind == "sweep":
                        expand(load_sweep(mf))
                    else:
                        load_network_file(mf)
                    status = "accepted"
                except (UserError, NetworkFileError, ExperimentFileError, RigFileError, SweepFileError) as e:
                    status = "refused"
                    msg = str(e)
                    if "\n" in msg.strip():
                        status = "REFUSED-MULTILINE"
                except Exception as e:
                    status = f"TRACEBACK1 {type(e).__name__}: {str(e)[:200]}"
                finally:
                    signal.alarm(0)
                if status == "accepted" and kind != "network":
                    status = stage2(kind, mf, work)
                results[key] = status
                if status not in ("refused", "ran", "timeout-running", "accepted") and not status.startswith("refused-late"):
                    print("BUG", key, status, flush=True)
        shutil.rmtree(work, ignore_errors=True)
    from collections import Counter
    print(Counter(s.split(":")[0].split(" ")[0] for s in results.values()))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 1 if any(s.split()[0].isupper() for s in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
