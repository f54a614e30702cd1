"""What a classification scores with no network: the baseline a trained network must beat.

A network that classifies well is not yet a network that *learned*: a read-out fitted to the
outputs (the nearest class mean, refitted every epoch) can classify well by itself, and Iris
is nearly separable on its raw measurements. Every classification report therefore sets the
trained accuracy beside two others:

- **untrained**: the run's epoch -1 row, the network before its first update, read out the
  same way (see docs/run-file.md);
- **no network**: the same read-out given the encoded inputs themselves (the source voltages,
  V) in place of the network's outputs:

  - ``nearest_mean`` fits the class means of the training inputs and gives each sample the
    class whose mean is nearest (Euclidean, in volts);
  - ``argmax`` and ``difference`` fit nothing; with no network to read, every sample reads the
    same, so the read-out can do no better than one class for all: the most common class of
    the training set (chance, for balanced classes).

The figures come from the run file alone (its task arrays and metadata), so a report of any
run file, old or new, gives them.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass

import numpy as np

#: Read-outs that fit nothing during training (their class is read from the outputs alone).
FIT_NOTHING = ("argmax", "difference")
#: The default read-out of each classification task kind (before the run file stored it).
DEFAULT_READOUT = {"iris": "nearest_mean", "csv": "nearest_mean", "classification": "nearest_mean",
                   "xor": "difference", "classification2": "difference"}


@dataclass(frozen=True)
class Baseline:
    """Accuracies (0..1) of a read-out with no network.

    Attributes:
        readout: the read-out (``nearest_mean``, ``argmax``, ``difference``).
        train, test: fraction of correctly classified samples of each split.
        how: one phrase saying what the baseline is.
    """

    readout: str
    train: float
    test: float
    how: str


def nearest_mean_predict(train_inputs: np.ndarray, train_labels: np.ndarray, inputs: np.ndarray) -> np.ndarray:
    """Class (B,) of each row of ``inputs`` (B, S) by the nearest class mean of ``train_inputs``."""
    classes = np.unique(train_labels)
    means = np.stack([train_inputs[train_labels == c].mean(axis=0) for c in classes])
    d = np.atleast_2d(inputs)[:, None, :] - means[None, :, :]
    return classes[np.argmin(np.sum(d * d, axis=2), axis=1)]


def no_network(readout: str, train_inputs, train_labels, test_inputs, test_labels) -> Baseline:
    """The :class:`Baseline` of ``readout`` on encoded inputs (N, S) and (M, S) (V) with
    labels (N,) and (M,)."""
    x_tr, x_te = np.asarray(train_inputs, float), np.asarray(test_inputs, float)
    y_tr, y_te = np.asarray(train_labels).astype(np.int64), np.asarray(test_labels).astype(np.int64)
    if readout == "nearest_mean":
        train = float(np.mean(nearest_mean_predict(x_tr, y_tr, x_tr) == y_tr))
        test = float(np.mean(nearest_mean_predict(x_tr, y_tr, x_te) == y_te))
        return Baseline(readout, train, test, "nearest class mean of the encoded inputs")
    if readout not in FIT_NOTHING:
        raise ValueError(f"unknown read-out {readout!r}")
    common = int(np.argmax(np.bincount(y_tr)))
    return Baseline(readout, float(np.mean(y_tr == common)), float(np.mean(y_te == common)),
                    "one class for every sample (the read-out fits nothing)")


def run_readout(metadata: dict, info: dict) -> str | None:
    """The read-out of a run: its task description's ``readout``, else the experiment file's
    ``[task] readout``, else the task kind's default; None for a task without classes."""
    if info.get("readout"):
        return str(info["readout"])
    kind = info.get("kind")
    try:
        task = tomllib.loads(metadata.get("experiment", "") or "").get("task", {})
    except tomllib.TOMLDecodeError:
        task = {}
    if kind == "xor":
        return "difference"
    if isinstance(task, dict) and task.get("readout"):
        return str(task["readout"])
    return DEFAULT_READOUT.get(kind)


def of_run(run) -> Baseline | None:
    """The no-network :class:`Baseline` of a run file's classification (None for a task
    without classes, or a run file without its inputs and labels)."""
    try:
        info = json.loads(run.metadata.get("task") or "{}")
    except json.JSONDecodeError:
        info = {}
    readout = run_readout(run.metadata, info if isinstance(info, dict) else {})
    need = ("train_inputs", "train_labels", "test_inputs", "test_labels")
    if readout is None or any(k not in run.task for k in need):
        return None
    x_tr = np.asarray(run.task["train_inputs"], float).reshape(-1, run.n_sources)
    x_te = np.asarray(run.task["test_inputs"], float).reshape(-1, run.n_sources)
    y_tr, y_te = np.asarray(run.task["train_labels"]), np.asarray(run.task["test_labels"])
    if not (len(x_tr) == len(y_tr) > 0 and len(x_te) == len(y_te) > 0):
        return None
    return no_network(readout, x_tr, y_tr, x_te, y_te)
