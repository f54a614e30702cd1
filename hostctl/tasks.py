"""Tasks: what a network should learn, as source voltages in and desired voltages out.

A task holds its training and test samples already encoded as source voltages (one column
per source node of the network, in the network's source order: the encoded features on the
task's input nodes, fixed voltages on the others), and decides the desired target voltages
``L`` of every sample. Classification tasks read the class from the free outputs; the targets
of a classification may adapt to what the network can do, once an epoch, from the free
outputs of the training set (see :class:`ClassificationTask`).

Encodings are explicit: every feature is scaled linearly from its range in the training data
to ``[v_min, v_max]`` (V) and clipped there, so no sample asks for a voltage outside the
range the experiment file names (which the plan checks against the wiring's limits).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from importlib import resources

import numpy as np

IRIS_SPECIES = ("setosa", "versicolor", "virginica")


# -- data ------------------------------------------------------------------------------------


def iris() -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Fisher's Iris data shipped with the package: (features (150, 4) in cm, labels (150,)
    0..2, feature names)."""
    text = resources.files("hostctl.data").joinpath("iris.csv").read_text()
    return read_csv_table(io.StringIO(text), "species", IRIS_SPECIES, "iris.csv")[:3]


def read_csv_table(stream, label: str, classes: tuple[str, ...] | None = None, source: str = "<csv>"):
    """Features and labels from a CSV file with a header (lines starting with ``#`` skipped).

    Returns:
        (features (N, F) float, labels (N,), feature names, class names): labels are class
        indices (classes in order of first appearance unless ``classes`` is given) when the
        label column is not numeric, else floats (regression).

    Raises:
        ValueError: naming the file, line and column of the first bad value.
    """
    rows = [r for r in csv.reader(line for line in stream if not line.lstrip().startswith("#")) if r]
    if not rows:
        raise ValueError(f"{source}: no header line")
    header = [h.strip() for h in rows[0]]
    if label not in header:
        raise ValueError(f"{source}: no column {label!r} (columns: {', '.join(header)})")
    li = header.index(label)
    names = tuple(h for i, h in enumerate(header) if i != li)
    if not names:
        raise ValueError(f"{source}: no feature column besides {label!r}")
    x, y = [], []
    for n, r in enumerate(rows[1:], start=2):
        if len(r) != len(header):
            raise ValueError(f"{source}: line {n}: {len(r)} values, the header has {len(header)}")
        try:
            x.append([float(v) for i, v in enumerate(r) if i != li])
        except ValueError:
            bad = next(v for i, v in enumerate(r) if i != li and not _is_float(v))
            raise ValueError(f"{source}: line {n}: {bad!r} is not a number") from None
        y.append(r[li].strip())
    if not x:
        raise ValueError(f"{source}: no data lines")
    x = np.array(x, float)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{source}: features must be finite numbers")
    if all(_is_float(v) for v in y) and classes is None:
        return x, np.array(y, float), names, ()
    found = list(classes or dict.fromkeys(y))
    unknown = sorted(set(y) - set(found))
    if unknown:
        raise ValueError(f"{source}: column {label!r}: unknown class {unknown[0]!r} (expected {', '.join(found)})")
    return x, np.array([found.index(v) for v in y], np.int64), names, tuple(found)


def _is_float(v: str) -> bool:
    try:
        float(v)
        return True
    except ValueError:
        return False


def lab_split(labels: np.ndarray, n_train_per_class: int, n_test_per_class: int | None, seed: int):
    """Indices (train, test) of a stratified random split: ``n_train_per_class`` of every
    class to train and ``n_test_per_class`` (all the rest when None) to test."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        if idx.size < n_train_per_class + (n_test_per_class or 1):
            raise ValueError(f"class {c} has {idx.size} samples, fewer than the split needs")
        train.append(idx[:n_train_per_class])
        end = None if n_test_per_class is None else n_train_per_class + n_test_per_class
        test.append(idx[n_train_per_class:end])
    return np.concatenate(train), np.concatenate(test)


# -- encoding --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Encoding:
    """Features to source voltages.

    Attributes:
        n_sources: number of source nodes of the network (S).
        feature_source: (F,) the source index (in ``network.sources`` order) of each feature.
        fixed: (S,) voltage of every source that carries no feature (V); NaN where a feature goes.
        lo, hi: (F,) feature values mapped to ``v_min`` and ``v_max``.
        v_min, v_max: the voltage range of the encoded features (V).
    """

    n_sources: int
    feature_source: np.ndarray
    fixed: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    v_min: float
    v_max: float

    @classmethod
    def fit(cls, features: np.ndarray, feature_source, fixed, v_min: float, v_max: float) -> "Encoding":
        """Scale each feature's range in ``features`` (the training set) to [v_min, v_max]."""
        lo, hi = features.min(axis=0), features.max(axis=0)
        hi = np.where(hi > lo, hi, lo + 1.0)  # a constant feature maps to v_min
        return cls(len(fixed), np.asarray(feature_source, np.int64), np.asarray(fixed, float), lo, hi, v_min, v_max)

    def __call__(self, features: np.ndarray) -> np.ndarray:
        """Source voltages (B, S) for features (B, F)."""
        u = np.clip((np.atleast_2d(features) - self.lo) / (self.hi - self.lo), 0.0, 1.0)
        out = np.tile(self.fixed, (u.shape[0], 1))
        out[:, self.feature_source] = self.v_min + u * (self.v_max - self.v_min)
        return out


# -- tasks -----------------------------------------------------------------------------------


@dataclass
class Task:
    """Samples and desired outputs.

    Attributes:
        kind: ``"iris"``, ``"classification"``, ``"xor"``, ``"regression"``, ``"allostery"``
            or ``"alternating"``.
        train_inputs, test_inputs: source voltages (N, S) and (M, S) (V).
        train_labels, test_labels: class indices (classification), else None.
        train_x, test_x: the raw features (for plots and reports).
        n_targets: number of target nodes (T).
        grid_inputs: (G, S) source voltages of a grid over a two-input task's input plane,
            evaluated with the test set to draw the decision boundary (V); None otherwise.
    """

    kind: str
    train_inputs: np.ndarray
    test_inputs: np.ndarray
    n_targets: int
    train_labels: np.ndarray | None = None
    test_labels: np.ndarray | None = None
    train_x: np.ndarray | None = None
    test_x: np.ndarray | None = None
    grid_inputs: np.ndarray | None = None

    #: True when :meth:`begin_epoch` needs the training set's free outputs.
    needs_train_outputs = False

    @property
    def n_train(self) -> int:
        return self.train_inputs.shape[0]

    def begin_epoch(self, train_outputs: np.ndarray | None) -> None:
        """Adapt to the free outputs (N, T) of the training set, learning off (V)."""

    def desired(self, split: str) -> np.ndarray:
        """Desired target voltages (N, T) of every sample of ``split`` (``"train"``/``"test"``) (V)."""
        raise NotImplementedError

    def desired_at(self, index: int, step: int, o_free: np.ndarray) -> np.ndarray:
        """Desired target voltages (T,) of training sample ``index`` at ``step``, whose free
        outputs are ``o_free`` (V)."""
        return self._train_desired[index]

    def sample_at(self, index: int, step: int) -> int:
        """The training sample used at ``step`` when the schedule drew ``index``."""
        return index

    def desired_for(self, outputs: np.ndarray, split: str) -> np.ndarray:
        """Desired voltages (N, T) of every sample of ``split`` given its outputs (V)."""
        return self.desired(split)

    def accuracy(self, outputs: np.ndarray, split: str) -> float:
        """Fraction of correctly classified samples (NaN for tasks without classes)."""
        return float("nan")

    def error(self, outputs: np.ndarray, split: str) -> float:
        """Mean output error ``1/2 sum_t (O - L)^2`` over the samples (V^2)."""
        d = outputs - self.desired_for(outputs, split)
        return float(0.5 * np.mean(np.sum(d * d, axis=1)))

    def misclassified(self, o_free: np.ndarray, index: int) -> bool:
        """Whether training sample ``index`` is misclassified by ``o_free`` (False without classes)."""
        return False

    def state(self) -> dict:
        """What the task has adapted (for a checkpoint)."""
        return {}

    def load_state(self, state: dict) -> None:
        """Restore :meth:`state`."""

    @property
    def _train_desired(self) -> np.ndarray:
        return self.desired("train")


@dataclass
class ClassificationTask(Task):
    """Classes read from the target voltages.

    Targets (``targets``):
      - ``"adaptive"``: at the start of every epoch, from the mean free output ``M[c]`` (T,)
        of each class's training samples, class ``c`` wants ``M[c, t] - margin_v`` on every
        target ``t`` except its own target ``t = c``, which should reach
        ``max_t M[c, t] + margin_v``; clipped to ``[0, v_out_max]``. The network cannot
        reach arbitrary voltages; these targets ask only for a little more separation than it
        already has.
      - ``"fixed"``: one-hot, ``high_v`` on the class's own target, ``low_v`` elsewhere
        (with the difference read-out: ``(high_v, low_v)`` for class 1, the reverse for 0);
      - ``"common_mode"`` (difference read-out): every step, from the sample's own free
        outputs ``O``, the targets keep their mean ``c = (O[0] + O[1]) / 2`` and ask for the
        difference ``+-2 margin_v``: ``(c + y margin_v, c - y margin_v)`` with ``y = +1`` for
        class 1 and ``-1`` for class 0. Only the difference is pushed, never the common mode
        the network cannot move freely.

    Read-out (``readout``):
      - ``"nearest_mean"``: the class whose mean training output (at the last epoch start)
        is nearest (Euclidean) to the output vector;
      - ``"argmax"``: the target with the highest voltage;
      - ``"difference"``: two targets; class 1 when ``O[0] - O[1] > 0``, else class 0.
    """

    n_classes: int = 2
    targets: str = "adaptive"
    readout: str = "nearest_mean"
    margin_v: float = 0.05
    high_v: float = 0.3
    low_v: float = 0.1
    v_out_max: float = 0.45
    class_names: tuple = ()
    class_means: np.ndarray | None = None
    class_desired: np.ndarray | None = field(default=None)

    def __post_init__(self) -> None:
        if self.targets not in ("adaptive", "fixed", "common_mode"):
            raise ValueError(f"targets must be adaptive, fixed or common_mode, got {self.targets!r}")
        if self.targets == "common_mode" and self.readout != "difference":
            raise ValueError("common_mode targets need the difference read-out")
        if self.readout not in ("nearest_mean", "argmax", "difference"):
            raise ValueError(f"readout must be nearest_mean, argmax or difference, got {self.readout!r}")
        if self.readout == "difference" and (self.n_targets != 2 or self.n_classes != 2):
            raise ValueError("the difference read-out needs two targets and two classes")
        if self.readout != "difference" and self.n_targets < self.n_classes and self.targets == "adaptive":
            raise ValueError(f"adaptive targets need a target per class ({self.n_classes}), have {self.n_targets}")
        if self.class_desired is None:
            self.class_desired = self._fixed_targets()

    @property
    def needs_train_outputs(self) -> bool:  # type: ignore[override]
        return self.targets == "adaptive" or self.readout == "nearest_mean"

    def _fixed_targets(self) -> np.ndarray:
        d = np.full((self.n_classes, self.n_targets), self.low_v)
        if self.readout == "difference":
            d[1] = (self.high_v, self.low_v)
            d[0] = (self.low_v, self.high_v)
        else:
            d[np.arange(self.n_classes), np.arange(self.n_classes)] = self.high_v
        return d

    def begin_epoch(self, train_outputs):
        if train_outputs is None:
            return
        means = np.stack([train_outputs[self.train_labels == c].mean(axis=0) for c in range(self.n_classes)])
        self.class_means = means
        if self.targets == "adaptive":
            if self.readout == "difference":
                # class 1 wants O[0] - O[1] above the other class's mean difference by the margin
                d = means.copy()
                centre = 0.5 * (means[:, 0] + means[:, 1])
                half = 0.5 * np.abs(means[:, 0] - means[:, 1]).max() + self.margin_v
                d[1] = (centre[1] + half, centre[1] - half)
                d[0] = (centre[0] - half, centre[0] + half)
            else:
                d = means - self.margin_v
                own = np.arange(self.n_classes)
                d[own, own] = means.max(axis=1) + self.margin_v
            self.class_desired = np.clip(d, 0.0, self.v_out_max)

    def desired(self, split):
        labels = self.train_labels if split == "train" else self.test_labels
        return self.class_desired[labels]

    def _common_mode(self, outputs: np.ndarray, labels: np.ndarray) -> np.ndarray:
        outputs = np.atleast_2d(outputs)
        c = 0.5 * (outputs[:, 0] + outputs[:, 1])
        y = np.where(np.asarray(labels) == 1, 1.0, -1.0) * self.margin_v
        return np.clip(np.c_[c + y, c - y], 0.0, self.v_out_max)

    def desired_at(self, index, step, o_free):
        if self.targets == "common_mode":
            return self._common_mode(o_free, self.train_labels[index : index + 1])[0]
        return self.class_desired[self.train_labels[index]]

    def desired_for(self, outputs, split):
        if self.targets == "common_mode":
            return self._common_mode(outputs, self.train_labels if split == "train" else self.test_labels)
        return self.desired(split)

    def predict(self, outputs: np.ndarray) -> np.ndarray:
        """Class of every output vector (B, T) -> (B,)."""
        outputs = np.atleast_2d(outputs)
        if self.readout == "difference":
            return (outputs[:, 0] - outputs[:, 1] > 0).astype(np.int64)
        if self.readout == "argmax" or self.class_means is None:
            return np.argmax(outputs[:, : self.n_classes], axis=1)
        d = outputs[:, None, :] - self.class_means[None, :, :]
        return np.argmin(np.sum(d * d, axis=2), axis=1)

    def accuracy(self, outputs, split):
        labels = self.train_labels if split == "train" else self.test_labels
        return float(np.mean(self.predict(outputs) == labels))

    def misclassified(self, o_free, index):
        return bool(self.predict(o_free)[0] != self.train_labels[index])

    def state(self):
        return {"class_means": None if self.class_means is None else self.class_means.tolist(),
                "class_desired": self.class_desired.tolist()}

    def load_state(self, state):
        cm = state.get("class_means")
        self.class_means = None if cm is None else np.array(cm, float)
        self.class_desired = np.array(state["class_desired"], float)


@dataclass
class FixedTask(Task):
    """Every sample has its own desired outputs (regression, allostery).

    Attributes:
        train_desired, test_desired: (N, T) and (M, T) desired voltages (V).
    """

    train_desired: np.ndarray = None  # type: ignore[assignment]
    test_desired: np.ndarray = None  # type: ignore[assignment]

    def desired(self, split):
        return self.train_desired if split == "train" else self.test_desired


@dataclass
class AlternatingTask(FixedTask):
    """Two (or more) input-output patterns, the training switching from one to the next
    every ``period_steps`` steps (the drift experiments of arXiv:2505.22887).

    With ``periods`` (a sweep of the period tau within one run), the run trains
    ``cycles_per_period`` full cycles (every pattern once) at each period in turn, then stays
    at the last; ``period_steps`` is then the first period.
    """

    period_steps: int = 1
    periods: tuple[int, ...] = ()
    cycles_per_period: int = 1

    def blocks(self) -> list[tuple[int, int, int]]:
        """(first step, last step + 1, period) of each period of the sweep, in order."""
        out, start = [], 0
        for p in self.periods or (self.period_steps,):
            n = int(p) * self.n_train * self.cycles_per_period
            out.append((start, start + n, int(p)))
            start += n
        return out

    def sample_at(self, index, step):
        if not self.periods:
            return (step // self.period_steps) % self.n_train
        for start, stop, p in self.blocks():
            if step < stop:
                return ((step - start) // p) % self.n_train
        return ((step - start) // p) % self.n_train


def legendre(u: np.ndarray, degree: int) -> np.ndarray:
    """Legendre polynomials P_0..P_degree at ``u`` in [-1, 1]: (len(u), degree + 1)."""
    return np.polynomial.legendre.legvander(np.asarray(u, float), degree)


def regression(coefficients, x_min_v: float, x_max_v: float, n_train: int, n_test: int,
               source_index: int, fixed: np.ndarray, n_targets: int = 1) -> FixedTask:
    """One analog input ``x`` (V) on source ``source_index``; desired output
    ``L(x) = sum_k c_k P_k(u)`` (V) with ``u = 2 (x - x_min) / (x_max - x_min) - 1``; training
    inputs evenly spaced over [x_min, x_max], test inputs likewise, more finely."""
    c = np.asarray(coefficients, float)

    def make(n):
        x = np.linspace(x_min_v, x_max_v, n)
        u = 2 * (x - x_min_v) / (x_max_v - x_min_v) - 1
        inputs = np.tile(fixed, (n, 1))
        inputs[:, source_index] = x
        return x[:, None], inputs, np.repeat((legendre(u, c.size - 1) @ c)[:, None], n_targets, axis=1)

    trx, tri, trd = make(n_train)
    tex, tei, ted = make(n_test)
    return FixedTask("regression", tri, tei, n_targets, train_x=trx, test_x=tex, train_desired=trd, test_desired=ted)
