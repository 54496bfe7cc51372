"""Reflected Gaussian KDE per hidden state on the unit box [0, 1]^d (d = 1 or 2), scikit-learn style.

PRM scores live in [0, 1] and pile up at the edges, where a plain KDE loses up to half its mass outside
the box. Every training point x is therefore mirrored across every edge: in 1-D the copies x, -x, 2 - x,
in 2-D the 9 products of {-x_j, x_j, 2 - x_j} over the coordinates; a mirrored copy also carries the
mirrored kernel (covariance D H D, D = diag(+-1)), so that the density's normal derivative vanishes at
the edges. Three (nine) copies are not the full infinite reflection group, so the copies' kernels
still put a little mass outside the box (copies of points near 0 leak past 1 and the reverse). We do not
ignore that: the density is

    f(z) = sum_copies N(z; c, D_c H D_c) / Z,   Z = sum_copies P_{N(c, D_c H D_c)}([0, 1]^d),

with Z computed exactly from normal CDFs, so that f integrates to exactly 1 on the box (not just
approximately, as the plain 1/n normalisation would for a bandwidth that is not small against 1).
Copies farther than 9 kernel standard deviations from the box (mass < 1e-19) are dropped.

The default bandwidth rule, likelihood cross-validation, costs (copies)^2 per step of its search, so it is
refused above ``MAX_CV_POINTS`` points per state (about a minute there); the rules ``scott`` and
``silverman`` and explicit bandwidths are linear in the points.
"""
from __future__ import annotations

import math

import numpy as np

from trimpomdp.errors import ModelError
from trimpomdp.observation_models import _kde_kernels as K
from trimpomdp.observation_models import bandwidth as bw
from trimpomdp.observation_models.binned import TRIM_STATES, BinnedObservationModel
from trimpomdp.observation_models.discretize import bin_centers, bin_probabilities

_REFLECT = ((0.0, 1.0), (0.0, -1.0), (2.0, -1.0))  # (offset, sign): x, -x, 2 - x
#: most points of one state for the quadratic 'cv' bandwidth rule
MAX_CV_POINTS = 10_000


def check_obs(X, d: int | None = None, what: str = "observations") -> np.ndarray:
    """(n, d) float array in [0, 1]^d, d in {1, 2}; a 1-D input is n points of a 1-D model when d == 1."""
    try:
        a = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError):
        raise ModelError(f"{what} must be numeric") from None
    if a.ndim == 1:
        a = a[:, None] if (d in (None, 1)) else a[None, :]
    if a.ndim != 2:
        raise ModelError(f"{what} must be a 2-D array (n, d), got {a.ndim} dimensions")
    if a.shape[1] not in (1, 2):
        raise ModelError(f"{what} have {a.shape[1]} coordinates; only 1-D or 2-D observations are supported")
    if d is not None and a.shape[1] != d:
        raise ModelError(f"{what} have {a.shape[1]} coordinates, the model has {d}")
    if np.isnan(a).any():
        i = int(np.argwhere(np.isnan(a))[0, 0])
        raise ModelError(f"{what} row {i} is NaN")
    bad = np.flatnonzero(((a < 0) | (a > 1)).any(axis=1))
    if bad.size:
        raise ModelError(f"{what} row {bad[0]} = {a[bad[0]].tolist()} lies outside [0, 1]")
    return a


def order_states(labels) -> list[str]:
    """The TRIM states present, in their canonical order, then any other labels sorted."""
    present = set(np.asarray(labels).astype(str).tolist())
    return [s for s in TRIM_STATES if s in present] + sorted(present - set(TRIM_STATES))


def reflect(X: np.ndarray, H: np.ndarray | None = None):
    """Mirrored copies (k, d), their kernel-correlation signs (k,) and owning point (k,).

    With H given, copies farther than ``K.FAR`` kernel sds outside the box in some coordinate are dropped."""
    n, d = X.shape
    Cs, signs, owners = [], [], []
    for combo in np.ndindex(*([3] * d)):
        off = np.array([_REFLECT[c][0] for c in combo])
        sg = np.array([_REFLECT[c][1] for c in combo])
        Cs.append(off + sg * X)
        signs.append(np.full(n, np.prod(sg)))
        owners.append(np.arange(n))
    C, csign, owner = np.concatenate(Cs), np.concatenate(signs), np.concatenate(owners)
    if H is not None:
        sd = np.sqrt(np.diag(H))
        out = np.maximum(np.maximum(-C, C - 1.0), 0.0) / sd
        keep = np.all(out < K.FAR, axis=1)
        C, csign, owner = C[keep], csign[keep], owner[keep]
    return np.ascontiguousarray(C), csign.astype(np.float64), owner.astype(np.int64)


def _check_cv_size(n: int, state: str) -> None:
    if n > MAX_CV_POINTS:
        raise ModelError(f"state {state!r} has {n:,} points, over the limit of {MAX_CV_POINTS:,} for the 'cv' "
                         "bandwidth (leave-one-out likelihood, quadratic in the points); use the bandwidth rule "
                         "'scott' or 'silverman' or a number")


class _NoBar:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _progress_bar(progress: bool, total: int, desc: str):
    """A tqdm bar on stderr when ``progress`` (a context manager yielding None otherwise)."""
    if not progress:
        return _NoBar()
    import sys

    from tqdm import tqdm

    return tqdm(total=total, desc=desc, file=sys.stderr, leave=False)


def _bar(items, progress: bool, desc: str, total_points: int):
    if not progress:
        return items
    import sys

    from tqdm import tqdm

    return tqdm(items, desc=f"{desc} ({total_points:,} points)", file=sys.stderr, leave=False)


class _StateDensity:
    """One state's fitted reflected KDE (points, kernel covariance, copies, normaliser)."""

    def __init__(self, X: np.ndarray, H: np.ndarray):
        self.X, self.H = X, H
        self.C, self.csign, self.owner = reflect(X, H)
        self.sd, self.rho, self.Hinv, self.log_norm = bw.kernel_params(H)
        self.Z = float(K.box_masses(self.C, self.csign, self.sd, self.rho).sum())
        if not self.Z > 0:
            raise ModelError("the kernels put no mass on the unit box")

    def density(self, Z: np.ndarray, chunk: int = 4096) -> np.ndarray:
        out = np.empty(Z.shape[0])
        for s in range(0, Z.shape[0], chunk):
            z = np.ascontiguousarray(Z[s:s + chunk])
            out[s:s + chunk] = K.kernel_sums(z, self.C, self.csign, self.owner, self.Hinv, False)
        return out * math.exp(self.log_norm) / self.Z

    def marginal(self, v: np.ndarray, dim: int, chunk: int = 256) -> np.ndarray:
        """Density of coordinate ``dim`` at the values v (m,), the other coordinate integrated over [0, 1]
        in closed form: per copy a 1-D normal times the box mass of its conditional normal."""
        from scipy.special import ndtr

        if self.X.shape[1] == 1:
            return self.density(v[:, None])
        o = 1 - dim
        var_d = self.H[dim, dim]
        cov = self.csign * self.H[0, 1]  # each copy's kernel covariance (mirrored copies flip its sign)
        sd_c = math.sqrt(max(self.H[o, o] - self.H[0, 1] ** 2 / var_d, 1e-300))
        out = np.empty(v.shape[0])
        for s in range(0, v.shape[0], chunk):
            dv = v[s:s + chunk, None] - self.C[None, :, dim]
            mu = self.C[None, :, o] + cov[None, :] / var_d * dv
            box = ndtr((1.0 - mu) / sd_c) - ndtr(-mu / sd_c)
            out[s:s + chunk] = (np.exp(-0.5 * dv * dv / var_d) * box).sum(axis=1)
        return out / math.sqrt(2 * math.pi * var_d) / self.Z


class ReflectedKDE:
    """Per-state reflected Gaussian KDE on [0, 1]^d.

    ``bandwidth``: "cv-grouped" (default: grouped CV of cell likelihoods, ``grouped_bandwidth``; on
    held-out real PRM data it scores at least Scott's rule, which leave-one-out "cv" does not),
    "cv" (leave-one-out likelihood cross-validation), "scott", "silverman", a float (kernel sd),
    a length-d vector (per-coordinate sds) or a (d, d) kernel covariance; a dict state -> any of these
    sets it per state. ``covariance``: "full" or "diag" data covariance for the rules. ``states``: state
    order (default: the TRIM states present, then the rest sorted)."""

    def __init__(self, bandwidth="cv-grouped", covariance: str = "full", states=None):
        self.bandwidth = bandwidth
        self.covariance = covariance
        self.states = states

    def get_params(self, deep: bool = True) -> dict:
        return {"bandwidth": self.bandwidth, "covariance": self.covariance, "states": self.states}

    def set_params(self, **params) -> "ReflectedKDE":
        for k, v in params.items():
            if k not in ("bandwidth", "covariance", "states"):
                raise ModelError(f"unknown parameter {k!r} of ReflectedKDE")
            setattr(self, k, v)
        return self

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y, progress: bool = False, groups=None) -> "ReflectedKDE":
        """Fit one density per state; ``progress`` shows a bar per state on stderr (the cv rule is slow).
        ``groups`` (n,): the solution of each point, held out together by the ``cv-grouped`` rule."""
        if self.covariance not in ("full", "diag"):
            raise ModelError(f"covariance must be 'full' or 'diag', not {self.covariance!r}")
        X = check_obs(X, what="training points")
        y = np.asarray(y)
        if y.ndim != 1 or y.shape[0] != X.shape[0]:
            raise ModelError(f"X has {X.shape[0]} rows but y has {y.size} labels")
        y = y.astype(str)
        if groups is not None:
            groups = np.asarray(groups).astype(str)
            if groups.shape != y.shape:
                raise ModelError(f"X has {X.shape[0]} rows but groups has {groups.size} entries")
        present = set(y.tolist())
        if self.states is None:
            states = order_states(y)
        else:
            states = [str(s) for s in self.states]
            extra = sorted(set(present) - set(states))
            if extra:
                raise ModelError(f"label {extra[0]!r} is not one of the states {states}")
        if not states:
            raise ModelError("no training points")
        self.states_ = tuple(states)
        self.n_dims_ = X.shape[1]
        self.counts_, self.bandwidths_, self.cv_scales_, self.cv_loglik_ = {}, {}, {}, {}
        self._dens = {}
        counts = {s: int(np.sum(y == s)) for s in self.states_}
        for s in self.states_:  # refuse before any work
            rule = self.bandwidth.get(s, "cv") if isinstance(self.bandwidth, dict) else self.bandwidth
            if isinstance(rule, str) and rule == "cv":
                _check_cv_size(counts[s], s)
        for s in _bar(self.states_, progress, "fit", sum(counts.values())):
            Xs = X[y == s]
            if Xs.shape[0] == 0:
                raise ModelError(f"state {s!r} has no points")
            H = self._select(Xs, s, None if groups is None else groups[y == s])
            self._dens[s] = _StateDensity(Xs, H)
            self.counts_[s] = int(Xs.shape[0])
            self.bandwidths_[s] = H
        return self

    def _select(self, Xs: np.ndarray, state: str, groups=None) -> np.ndarray:
        rule = self.bandwidth.get(state, "cv") if isinstance(self.bandwidth, dict) else self.bandwidth
        n, d = Xs.shape
        if isinstance(rule, str):
            if rule not in bw.RULES:
                raise ModelError(f"bandwidth must be one of {bw.RULES} or a number, not {rule!r}")
            cov = bw.data_covariance(Xs, self.covariance, state)
            if rule == "silverman":
                return bw.silverman_factor(n, d) ** 2 * cov
            H0 = bw.scott_factor(n, d) ** 2 * cov
            if rule == "scott":
                return H0
            if rule == "cv-grouped":
                from trimpomdp.observation_models.grouped_bandwidth import grouped_cv_scale

                s, ll = grouped_cv_scale(
                    lambda Xt, H: ReflectedKDE(bandwidth=H).fit(Xt, np.full(len(Xt), "x")), Xs, groups, H0)
                self.cv_scales_[state], self.cv_loglik_[state] = s, ll
                return s * s * H0
            _check_cv_size(n, state)
            C, csign, owner = reflect(Xs, bw.CV_SCALE_BOUNDS[1] ** 2 * H0)
            s, ll = bw.cv_scale(Xs, C, csign, owner, H0)
            self.cv_scales_[state], self.cv_loglik_[state] = s, ll
            return s * s * H0
        return bw.explicit_bandwidth(rule, d)

    @classmethod
    def from_fitted(cls, states, points: dict, bandwidths: dict, bandwidth="explicit",
                    covariance: str = "full") -> "ReflectedKDE":
        """Rebuild a fitted model from its points and kernel covariances (used by ``io.load_obs_model``)."""
        self = cls(bandwidth=bandwidth, covariance=covariance, states=tuple(states))
        self.states_ = tuple(states)
        self.n_dims_ = int(np.asarray(points[states[0]]).shape[1])
        self.counts_, self.bandwidths_, self.cv_scales_, self.cv_loglik_, self._dens = {}, {}, {}, {}, {}
        for s in self.states_:
            Xs = check_obs(points[s], self.n_dims_, what=f"points of state {s!r}")
            H = bw.explicit_bandwidth(bandwidths[s], self.n_dims_)
            self._dens[s] = _StateDensity(Xs, H)
            self.counts_[s], self.bandwidths_[s] = int(Xs.shape[0]), H
        return self

    # ------------------------------------------------------------------ queries
    def _check_fitted(self):
        if not hasattr(self, "_dens"):
            raise ModelError("the model is not fitted yet")

    def _state(self, state) -> str:
        s = str(state)
        if s not in self._dens:
            raise ModelError(f"unknown state {state!r}; the model has {list(self.states_)}")
        return s

    def score_samples(self, X) -> np.ndarray:
        """log f(x | state) for each row of X and each state: (n, n_states), columns in ``states_`` order
        (scikit-learn's ``score_samples(X)`` of a density, one column per class-conditional density)."""
        self._check_fitted()
        with np.errstate(divide="ignore"):
            return np.log(self.likelihood(check_obs(X, self.n_dims_)))

    def log_density(self, X, state) -> np.ndarray:
        """log f(x | state) for each row of X, one state."""
        with np.errstate(divide="ignore"):
            return np.log(self.density(X, state))

    def predict_proba(self, X) -> np.ndarray:
        """P(state | x) under a uniform prior, (n, n_states) (scikit-learn's classifier convention)."""
        self._check_fitted()
        return self.posterior(check_obs(X, self.n_dims_))

    def predict(self, X) -> np.ndarray:
        """The most probable state of each row under a uniform prior."""
        return np.asarray(self.states_)[np.argmax(self.predict_proba(X), axis=1)]

    def density(self, X, state) -> np.ndarray:
        self._check_fitted()
        return self._dens[self._state(state)].density(check_obs(X, self.n_dims_))

    def marginal_density(self, values, state, dim: int = 0) -> np.ndarray:
        """Density of coordinate ``dim`` of a state's observations, the others integrated out (exact);
        e.g. f(min earlier score | state), the normaliser of P(current | state, min earlier)."""
        self._check_fitted()
        if not 0 <= dim < self.n_dims_:
            raise ModelError(f"dim must be below {self.n_dims_}, not {dim}")
        v = check_obs(np.asarray(values, dtype=np.float64).reshape(-1, 1), 1, what="values")[:, 0]
        return self._dens[self._state(state)].marginal(v, dim)

    def likelihood(self, obs) -> np.ndarray:
        """Densities f(obs | state) for all states: (n, n_states), or (n_states,) for one observation."""
        self._check_fitted()
        a = np.asarray(obs, dtype=np.float64)
        single = a.ndim == 0 or (a.ndim == 1 and self.n_dims_ == 2)
        Z = check_obs(a.reshape(-1, self.n_dims_) if a.ndim <= 1 else a, self.n_dims_)
        L = np.stack([self._dens[s].density(Z) for s in self.states_], axis=1)
        return L[0] if single else L

    def posterior(self, obs, prior=None) -> np.ndarray:
        """P(state | obs) under ``prior`` (default uniform); rows where every density is 0 stay at the prior."""
        L = np.atleast_2d(self.likelihood(obs))
        single = L.shape[0] == 1 and np.asarray(obs).ndim <= (0 if self.n_dims_ == 1 else 1)
        p = np.full(len(self.states_), 1.0 / len(self.states_)) if prior is None else np.asarray(prior, float)
        if p.shape != (len(self.states_),) or np.any(p < 0) or not np.isclose(p.sum(), 1.0):
            raise ModelError(f"prior must be {len(self.states_)} non-negative numbers summing to 1")
        J = L * p
        tot = J.sum(axis=1, keepdims=True)
        post = np.where(tot > 0, J / np.where(tot > 0, tot, 1.0), p)
        return post[0] if single else post

    def discretize(self, bin_size: float = 0.05, progress: bool = False) -> BinnedObservationModel:
        """Exact P(bin | state) on a regular grid (row-major, last coordinate fastest); ``progress`` shows
        a bar over the kernel copies on stderr."""
        self._check_fitted()
        centers = bin_centers(bin_size, self.n_dims_)  # refuses an oversized grid before any work
        total = sum(self._dens[s].C.shape[0] for s in self.states_)
        with _progress_bar(progress, total, "discretise") as bar:
            probs = np.stack([bin_probabilities(self._dens[s].C, self._dens[s].csign, self._dens[s].H, bin_size,
                                                bar.update if bar is not None else None)
                              for s in self.states_])
        return BinnedObservationModel(self.states_, centers, probs, float(bin_size))

    def bin_index(self, obs, bin_size: float = 0.05):
        """Bin of each observation on the grid of ``discretize(bin_size)`` (delegates to the binned model)."""
        self._check_fitted()
        m = BinnedObservationModel(self.states_[:1], bin_centers(bin_size, self.n_dims_),
                                   np.full((1, round(1 / bin_size) ** self.n_dims_),
                                           1.0 / round(1 / bin_size) ** self.n_dims_), float(bin_size))
        return m.bin_index(obs)
