r"""The Random Hierarchy Model (Cagnetta, Petrini, Tomasini, Favero, Wyart, PRX 14, 031001, 2024).

A class symbol (level 0) is rewritten L times; at each production depth every symbol
becomes one of its ``m`` synonymous ``s``-tuples of symbols from a vocabulary of size
``v``.  The input is the string of ``d = s**L`` symbols at level L.

Conventions (see ``docs/deviations.md`` for where they differ from the reference code):

* **Rules.**  At each production depth every symbol that *occurs* at that level gets
  exactly ``m`` distinct s-tuples; all tuples at one depth are distinct (unambiguous
  grammar), drawn uniformly without replacement from the ``v**s`` tuples, shared by all
  positions and drawn independently per depth, from ``numpy.random.default_rng(seed)``.
* **Datapoints.**  A datapoint is a class plus one choice in ``{0..m-1}`` per internal
  node, ``n_nodes = (s**L - 1)/(s - 1)`` choices.  Index ``i`` in ``[0, P_max)`` decodes as
  ``label = i // m**n_nodes`` and the remainder in base m, most significant digit first:
  the root's choice, then the depth-1 nodes left to right, and so on::

      P_max = n_c * m ** ((s**L - 1) / (s - 1))

* **Splits.**  Position ``k`` of a seeded pseudo-random permutation of ``[0, P_max)``
  (a Feistel network with cycle walking, so nothing of size P_max is ever stored)
  gives datapoint ``k``: the first ``P_test`` positions are the test set and the next
  ``P`` the training set.  For a given seed the test set is fixed and training sets are
  nested in P; ``stream`` yields exactly the points of ``split`` in batches.  When
  ``P_max > 2**62`` the points are drawn i.i.d. by a counter-based hash instead
  (duplicates possible with probability about N**2 / (2 P_max)).
* **Resampling** ``R_l`` keeps the class and the choices at depths ``< l`` and redraws
  every choice at depths ``>= l`` uniformly, so a redrawn choice equals the old one
  with probability 1/m.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, NamedTuple

import numpy as np

from spiking_rhm.errors import RHMParameterError

if TYPE_CHECKING:  # torch is imported lazily so that `import spiking_rhm` stays light
    import torch

_FEISTEL_MAX = 2**62  # exact permutations up to this P_max; i.i.d. hashing above
_FEISTEL_ROUNDS = 6
_FULL_MAX = 50_000_000  # largest dataset `full()` will materialise


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise RHMParameterError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if value < minimum:
        raise RHMParameterError(f"{name} must be >= {minimum}, got {value}")
    return value


@dataclass(frozen=True)
class RHMParams:
    """Validated RHM parameters: vocabulary v, synonyms m, classes n_c, tuple size s, depth L."""

    v: int
    m: int
    n_c: int
    s: int
    L: int

    def __post_init__(self):
        v = _check_int("v", self.v, 2)
        m = _check_int("m", self.m, 1)
        n_c = _check_int("n_c", self.n_c, 2)
        s = _check_int("s", self.s, 2)
        L = _check_int("L", self.L, 1)
        for name, val in zip("v m n_c s L".split(), (v, m, n_c, s, L)):
            object.__setattr__(self, name, val)
        if n_c > v:
            raise RHMParameterError(f"n_c = {n_c} > v = {v}: the classes are level-0 symbols; valid: n_c <= v")
        if n_c * m > v**s:
            raise RHMParameterError(
                f"n_c * m = {n_c * m} > v**s = {v**s}: the root needs n_c*m distinct s-tuples; "
                f"valid: m <= v**s // n_c = {v**s // n_c}"
            )
        if L >= 2 and m * v > v**s:
            raise RHMParameterError(
                f"m * v = {m * v} > v**s = {v**s}: below the root every symbol needs m distinct s-tuples of its own; "
                f"valid: m <= v**(s-1) = {v ** (s - 1)}"
            )

    @property
    def d(self) -> int:
        """Number of input positions, s**L."""
        return self.s**self.L

    @property
    def n_nodes(self) -> int:
        """Internal nodes of the tree = production choices per datapoint, (s**L - 1)/(s - 1)."""
        return (self.s**self.L - 1) // (self.s - 1)

    @property
    def P_max(self) -> int:
        """Size of the full dataset, n_c * m**n_nodes (a Python int: may exceed 2**63)."""
        return self.n_c * self.m**self.n_nodes

    @property
    def scale(self) -> int:
        """n_c * m**L, the sample-complexity scale of deep CNNs (P* ~ n_c m^L)."""
        return self.n_c * self.m**self.L

    def astuple(self) -> tuple[int, int, int, int, int]:
        return (self.v, self.m, self.n_c, self.s, self.L)


class Sample(NamedTuple):
    """A batch of datapoints: ``labels [N]``, production ``choices [N, n_nodes]``, ``inputs [N, d]`` (int64)."""

    labels: np.ndarray
    choices: np.ndarray
    inputs: np.ndarray

    @property
    def size(self) -> int:
        return int(self.labels.shape[0])

    def take(self, idx) -> "Sample":
        return Sample(self.labels[idx], self.choices[idx], self.inputs[idx])


def onehot(inputs, v: int, dtype: "torch.dtype | None" = None, device: "str | torch.device" = "cpu") -> "torch.Tensor":
    """One-hot encoding ``[N, v, d]`` (channels = symbols, positions = d) of int inputs ``[N, d]``
    (float32 unless ``dtype`` is given)."""
    import torch

    dtype = torch.float32 if dtype is None else dtype
    x = torch.as_tensor(np.asarray(inputs), device=device).long()
    out = torch.zeros(x.shape[0], v, x.shape[1], dtype=dtype, device=device)
    return out.scatter_(1, x.unsqueeze(1), 1)


def _mix64(z: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on uint64 arrays (wrapping arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


class _FeistelPermutation:
    """Seeded bijection of [0, n) evaluated pointwise (balanced Feistel network + cycle walking)."""

    def __init__(self, n: int, seed: int):
        self.n = n
        bits = max(2, (n - 1).bit_length())
        self.half = (bits + 1) // 2
        self.mask = np.uint64((1 << self.half) - 1)
        keys = np.random.default_rng([seed, 0x5EED]).integers(0, 2**63, size=_FEISTEL_ROUNDS, dtype=np.int64)
        self.keys = keys.astype(np.uint64)

    def _once(self, x: np.ndarray) -> np.ndarray:
        half = np.uint64(self.half)
        left, right = x >> half, x & self.mask
        with np.errstate(over="ignore"):
            for key in self.keys:
                left, right = right, left ^ (_mix64(right ^ key) & self.mask)
        return (left << half) | right

    def __call__(self, positions: np.ndarray) -> np.ndarray:
        y = self._once(positions.astype(np.uint64))
        n = np.uint64(self.n)
        todo = np.flatnonzero(y >= n)
        while todo.size:
            y[todo] = self._once(y[todo])
            todo = todo[y[todo] >= n]
        return y.astype(np.int64)


class RHM:
    """One draw of the RHM grammar, and the datapoints it generates.

    >>> rhm = RHM(v=8, m=4, n_c=8, s=2, L=2, seed=0)
    >>> rhm.P_max, rhm.d
    (512, 4)
    >>> train, test = rhm.split(P=256, P_test=100, seed=0)
    >>> train.inputs.shape, test.labels.shape
    ((256, 4), (100,))
    """

    def __init__(self, v: int, m: int, n_c: int, s: int, L: int, seed: int = 0):
        self.params = RHMParams(v, m, n_c, s, L)
        self.seed = _check_int("seed", seed, 0)
        self.rules = self._sample_rules()

    # -- convenience ---------------------------------------------------------
    v = property(lambda self: self.params.v)
    m = property(lambda self: self.params.m)
    n_c = property(lambda self: self.params.n_c)
    s = property(lambda self: self.params.s)
    L = property(lambda self: self.params.L)
    d = property(lambda self: self.params.d)
    n_nodes = property(lambda self: self.params.n_nodes)
    P_max = property(lambda self: self.params.P_max)

    def __repr__(self) -> str:
        v, m, n_c, s, L = self.params.astuple()
        return f"RHM(v={v}, m={m}, n_c={n_c}, s={s}, L={L}, seed={self.seed})"

    # -- grammar -------------------------------------------------------------
    def _sample_rules(self) -> list[np.ndarray]:
        v, m, n_c, s, L = self.params.astuple()
        rng = np.random.default_rng(self.seed)
        rules = []
        used = np.arange(n_c)
        powers = v ** np.arange(s - 1, -1, -1)
        for depth in range(L):
            n_parents = n_c if depth == 0 else v
            table = np.full((n_parents, m, s), -1, dtype=np.int64)
            ids = rng.choice(v**s, size=len(used) * m, replace=False)
            tuples = (ids[:, None] // powers[None, :]) % v  # lexicographic, most significant first
            table[used] = tuples.reshape(len(used), m, s)
            rules.append(table)
            used = np.unique(tuples)
        return rules

    def depth_slice(self, depth: int) -> slice:
        """Columns of ``choices`` holding the s**depth choices of production depth ``depth``."""
        s = self.s
        start = (s**depth - 1) // (s - 1)
        return slice(start, start + s**depth)

    # -- datapoints ----------------------------------------------------------
    def tree(self, sample_or_labels, choices=None) -> list[np.ndarray]:
        """Hidden symbols at every level: list of L+1 arrays, level l of shape ``[N, s**l]``."""
        labels, choices = self._unpack(sample_or_labels, choices)
        level = labels.reshape(-1, 1)
        levels = [level]
        for depth, table in enumerate(self.rules):
            pick = choices[:, self.depth_slice(depth)]
            rows = table.reshape(-1, self.s)  # row (parent * m + choice) holds that production
            level = np.take(rows, level * self.m + pick, axis=0).reshape(level.shape[0], level.shape[1] * self.s)
            levels.append(level)
        return levels

    def inputs(self, sample_or_labels, choices=None) -> np.ndarray:
        """The input strings ``[N, d]`` (symbol ids 0..v-1)."""
        return self.tree(sample_or_labels, choices)[-1]

    def make(self, labels: np.ndarray, choices: np.ndarray) -> Sample:
        labels = np.asarray(labels, dtype=np.int64)
        choices = np.asarray(choices, dtype=np.int64).reshape(labels.shape[0], self.n_nodes)
        return Sample(labels, choices, self.inputs(labels, choices))

    def decode(self, indices) -> Sample:
        """Datapoints of the given indices in ``[0, P_max)`` (requires P_max < 2**63)."""
        if self.P_max >= 2**63:
            raise RHMParameterError(f"P_max = {self.P_max} >= 2**63: integer indices are not available; use split/stream")
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.P_max):
            raise RHMParameterError(f"indices must lie in [0, P_max = {self.P_max})")
        per_class = self.m**self.n_nodes
        labels, rest = np.divmod(idx, per_class)
        digit = np.arange(self.n_nodes - 1, -1, -1, dtype=np.int64)  # most significant first
        if self.m & (self.m - 1) == 0:  # power of two: shifts are ~6x faster than divisions
            bits = self.m.bit_length() - 1
            choices = (rest[:, None] >> (bits * digit)[None, :]) & (self.m - 1)
        else:
            choices = (rest[:, None] // (self.m**digit)[None, :]) % self.m
        return self.make(labels, choices)

    def index(self, sample: Sample) -> np.ndarray:
        """Inverse of :meth:`decode`."""
        if self.P_max >= 2**63:
            raise RHMParameterError(f"P_max = {self.P_max} >= 2**63: integer indices are not available")
        idx = sample.labels.astype(np.int64).copy()
        for k in range(self.n_nodes):
            idx = idx * self.m + sample.choices[:, k]
        return idx

    def full(self) -> Sample:
        """Every datapoint, in index order."""
        if self.P_max > _FULL_MAX:
            raise RHMParameterError(f"P_max = {self.P_max} is too large to materialise (limit {_FULL_MAX}); use stream")
        return self.decode(np.arange(self.P_max, dtype=np.int64))

    def points(self, positions: np.ndarray, seed: int) -> Sample:
        """Datapoints at ``positions`` of the seeded order of the dataset (see module docstring)."""
        positions = np.asarray(positions, dtype=np.int64)
        if self.P_max <= _FEISTEL_MAX:
            return self.decode(_FeistelPermutation(self.P_max, seed)(positions))
        # i.i.d. points from a counter-based hash of (seed, position, node)
        base = _mix64(positions.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(seed + 1))
        nodes = np.arange(self.n_nodes + 1, dtype=np.uint64) * np.uint64(0xD1B54A32D192ED03)
        with np.errstate(over="ignore"):
            h = _mix64(base[:, None] ^ nodes[None, :])
        labels = (h[:, 0] % np.uint64(self.n_c)).astype(np.int64)
        choices = (h[:, 1:] % np.uint64(self.m)).astype(np.int64)
        return self.make(labels, choices)

    def _check_sizes(self, P, P_test) -> tuple[int, int]:
        P = _check_int("P", P, 0)
        P_test = _check_int("P_test", P_test, 0)
        if P + P_test > self.P_max:
            raise RHMParameterError(
                f"P + P_test = {P + P_test} exceeds P_max = {self.P_max} for (v, m, n_c, s, L) = "
                f"{self.params.astuple()}; train and test sets must be disjoint"
            )
        return P, P_test

    def split(self, P: int, P_test: int = 0, seed: int = 0) -> tuple[Sample, Sample]:
        """Disjoint training (``P`` points) and test (``P_test`` points) sets."""
        P, P_test = self._check_sizes(P, P_test)
        test = self.points(np.arange(P_test), seed)
        train = self.points(np.arange(P_test, P_test + P), seed)
        return train, test

    def stream(self, P: int, batch_size: int, seed: int = 0, P_test: int = 0) -> Iterator[Sample]:
        """The training points of ``split(P, P_test, seed)``, in order, ``batch_size`` at a time."""
        P, P_test = self._check_sizes(P, P_test)
        batch_size = _check_int("batch_size", batch_size, 1)
        for start in range(0, P, batch_size):
            stop = min(P, start + batch_size)
            yield self.points(np.arange(P_test + start, P_test + stop), seed)

    def resample(self, sample: Sample, level: int, generator: np.random.Generator) -> Sample:
        """Synonym resampling R_level: redraw every production choice at depths >= ``level``."""
        level = _check_int("level", level, 0)
        if level > self.L:
            raise RHMParameterError(f"resampling level must be in 0..L = {self.L}, got {level}")
        choices = sample.choices.copy()
        start = (self.s**level - 1) // (self.s - 1)
        choices[:, start:] = generator.integers(0, self.m, size=choices[:, start:].shape)
        return self.make(sample.labels, choices)

    def _unpack(self, sample_or_labels, choices):
        if choices is None:
            return np.asarray(sample_or_labels.labels), np.asarray(sample_or_labels.choices)
        return np.asarray(sample_or_labels), np.asarray(choices)
