"""Discretised observation models: P(bin | state) on a regular grid of the unit box [0, 1]^d.

This is the contract between ``fit-obs`` (which produces it) and the routing POMDP (which consumes it).
The file layout is the reference implementation's own (``<state>_centers`` (n_bins, d) and
``<state>_probs`` (n_bins,)), so a table exported by us and the shared reference table load alike.
Bins are ordered row-major with the last coordinate fastest, as in the reference table.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trimpomdp.errors import FormatError, ModelError

#: the TRIM hidden states, in the order used everywhere
TRIM_STATES = ("correct", "fresh_error", "derailed")


@dataclass
class BinnedObservationModel:
    """``probs[i, k]`` = P(observation falls in bin k | state i); ``centers`` (n_bins, d)."""

    states: tuple[str, ...]
    centers: np.ndarray
    probs: np.ndarray
    bin_size: float

    def __post_init__(self):
        self.states = tuple(self.states)
        self.centers = np.atleast_2d(np.asarray(self.centers, dtype=np.float64))
        self.probs = np.atleast_2d(np.asarray(self.probs, dtype=np.float64))
        b = self.bin_size
        if isinstance(b, bool) or not isinstance(b, (int, float, np.number)) or not (0 < float(b) <= 1):
            raise ModelError(f"bin size must be a number in (0, 1], got {b!r}")
        per_dim = int(round(1.0 / float(b)))
        if abs(per_dim * float(b) - 1.0) > 1e-9:
            raise ModelError(f"bin size {b!r} does not divide [0, 1] into whole bins")
        if self.centers.ndim != 2 or self.centers.shape[1] not in (1, 2):
            raise ModelError(f"centers must have shape (n_bins, 1 or 2), got {self.centers.shape}")
        n_bins, d = self.centers.shape
        if self.probs.shape != (len(self.states), n_bins):
            raise ModelError(f"probs has shape {self.probs.shape}, expected ({len(self.states)}, {n_bins})")
        if n_bins != per_dim**d:
            raise ModelError(f"{n_bins} bins is not a {per_dim}^{d} grid for bin size {self.bin_size}")
        # bin_index() assumes the row-major grid (last coordinate fastest): the centres must be that grid
        c = (np.arange(per_dim) + 0.5) / per_dim
        grid = np.stack([g.ravel() for g in np.meshgrid(*([c] * d), indexing="ij")], axis=1)
        off = np.flatnonzero(~np.all(np.abs(self.centers - grid) <= 1e-6, axis=1))
        if off.size:
            k = int(off[0])
            raise ModelError(f"bin centre {k} is {self.centers[k].tolist()}, but bin {k} of the {per_dim}^{d} "
                             f"grid (row-major) is centred at {grid[k].tolist()}")
        if np.any(self.probs < -1e-12) or not np.all(np.isfinite(self.probs)):
            raise ModelError("bin probabilities must be finite and non-negative")
        sums = self.probs.sum(axis=1)
        bad = np.flatnonzero(np.abs(sums - 1.0) > 1e-3)
        if bad.size:
            raise ModelError(f"bin probabilities of state {self.states[bad[0]]!r} sum to {sums[bad[0]]:.6g}, not 1")

    @property
    def n_bins(self) -> int:
        return self.centers.shape[0]

    @property
    def dims(self) -> int:
        return self.centers.shape[1]

    def bin_index(self, obs) -> np.ndarray | int:
        """Bin of each observation (..., d) in [0, 1]^d; values on the upper edge go to the last bin."""
        x = np.asarray(obs, dtype=np.float64)
        scalar = x.ndim == (0 if self.dims == 1 else 1)
        x = x.reshape(-1, self.dims)
        if np.any(~np.isfinite(x)) or np.any(x < 0) or np.any(x > 1):
            raise ModelError(f"observations must lie in [0, 1]^{self.dims}")
        per_dim = int(round(1.0 / self.bin_size))
        idx = np.minimum((x / self.bin_size).astype(np.int64), per_dim - 1)
        flat = np.zeros(x.shape[0], dtype=np.int64)
        for j in range(self.dims):
            flat = flat * per_dim + idx[:, j]
        return int(flat[0]) if scalar else flat

    def likelihood(self, obs) -> np.ndarray:
        """P(bin(obs) | state) for every state: (n_states,) or (n, n_states)."""
        k = self.bin_index(obs)
        return self.probs[:, k].T

    def marginal(self, dim: int) -> "BinnedObservationModel":
        """The 1-D table of coordinate ``dim`` of a 2-D table (the other coordinate summed out): the same
        fitted density read as P(current-score bin | state) when ``dim`` is 1."""
        if self.dims != 2 or dim not in (0, 1):
            raise ModelError(f"a marginal needs a 2-D table and dim 0 or 1, got a {self.dims}-D table, dim {dim!r}")
        m = int(round(1.0 / self.bin_size))
        grid = self.probs.reshape(len(self.states), m, m)
        probs = grid.sum(axis=2 if dim == 0 else 1)
        return BinnedObservationModel(self.states, (np.arange(m) + 0.5)[:, None] / m, probs, self.bin_size)

    def save(self, path) -> None:
        """Write in the reference table layout (plain arrays, no pickle)."""
        arrays = {}
        for i, s in enumerate(self.states):
            arrays[f"{s}_centers"] = self.centers
            arrays[f"{s}_probs"] = self.probs[i]
        arrays["bin_size"] = np.float64(self.bin_size)
        with open(path, "wb") as fh:
            np.savez_compressed(fh, **arrays)

    @classmethod
    def load(cls, path, states: tuple[str, ...] | None = None) -> "BinnedObservationModel":
        """Load a bins table (ours or the reference's); ``states`` defaults to those found in the file."""
        from trimpomdp import schemas
        from trimpomdp.artifacts import read_npz

        data = read_npz(path)
        found = [k[: -len("_probs")] for k in data if k.endswith("_probs")]
        if states is None:
            states = tuple(s for s in TRIM_STATES if s in found) + tuple(s for s in found if s not in TRIM_STATES)
        missing = [s for s in states if f"{s}_probs" not in data or f"{s}_centers" not in data]
        if not states or missing:
            raise FormatError(
                f"expected arrays <state>_centers and <state>_probs for states {list(states) or list(TRIM_STATES)}"
                f" (missing {missing or 'all'})", str(path))
        if all(np.ndim(data[f"{s}_centers"]) == 1 for s in states):  # a 1-D table may store (M,) centres
            data.update({f"{s}_centers": data[f"{s}_centers"][:, None] for s in states})
        data, _ = schemas.validate(schemas.bins_table(states), data, {}, path)
        centers = data[f"{states[0]}_centers"]
        for s in states[1:]:
            if not np.allclose(data[f"{s}_centers"], centers):
                raise FormatError(f"bin centres of state {s!r} differ from those of {states[0]!r}", str(path))
        if "bin_size" in data:
            bin_size = float(data["bin_size"])
        else:  # infer from the spacing of the centres
            c = np.unique(centers[:, -1])
            bin_size = float(np.round(np.min(np.diff(c)), 12)) if c.size > 1 else 1.0
        probs = np.stack([data[f"{s}_probs"] for s in states])
        try:
            return cls(states, centers, probs, bin_size)
        except ModelError as exc:
            raise FormatError(str(exc), str(path)) from None
