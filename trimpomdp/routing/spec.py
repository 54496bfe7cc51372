"""The TRIM routing model spec: a small versioned JSON file plus the observation table it names.

``TrimModel`` holds every number the routing POMDP needs (accuracies, solution-length distribution,
strong-token distribution, reward, observation model) so that solver, filter, simulator and decode loop
all read one validated object. Paths inside a spec are relative to the spec file.

Token-cost assumption (documented because the shared data carry no token lengths): a regeneration of the
*current* step costs ``tokens_per_weak_token * n`` strong tokens, ``n`` being the weak candidate's token
count (the reference uses ``n`` itself); regenerations of *future* steps cost a draw from
``strong_step_tokens``. The default is a lognormal whose mean is the strong-only run's tokens per step on
MATH-500 (494.84 tokens / 8.018 steps = 61.7) with log-sd 0.8, cut into equal-probability bins; replace it
with real data (``{"samples": [...]}`` or ``{"values": [...], "probs": [...]}``) when you have it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trimpomdp import schemas
from trimpomdp.errors import FormatError, TrimError
from trimpomdp.observation_models.binned import TRIM_STATES, BinnedObservationModel
from trimpomdp.routing import difficulty
from trimpomdp.routing.difficulty import Difficulty

FORMAT = "trimpomdp.trim_model"
#: 2 adds ``observation`` (which observation model the table is read as); 3 adds ``classes`` (latent question
#: difficulty) and ``derailed_as_error``; older specs read as before
VERSION = 3
#: the observation models a spec can name (``docs/formats.md``); the planner, the simulator, the decode
#: filter and the flat export all read the table through the one named here
OBSERVATIONS = ("current", "pair")
#: every option compared by ``fit-obs --evaluate``; 'conditional' and 'reference' are evaluated, not planned
EVALUATED_OBSERVATIONS = ("current", "pair", "conditional", "reference")
#: mean strong tokens per step of the strong-only anchor run (494.84 tokens over 8.018 calls per question)
DEFAULT_STEP_TOKENS = 494.84 / 8.018
DEFAULT_TOKEN_SIGMA = 0.8
DEFAULT_TOKEN_BINS = 16


def _err(field_name: str, msg: str, path=None) -> TrimError:
    where = f"{path}: " if path else ""
    return TrimError(f"{where}field {field_name!r}: {msg}")


def lognormal_bins(mean: float, sigma: float, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Equal-probability bins of a lognormal with the given mean; each value is its bin's conditional mean."""
    from scipy.stats import lognorm

    mu = math.log(mean) - sigma**2 / 2
    edges = lognorm.ppf(np.linspace(0, 1, bins + 1), s=sigma, scale=math.exp(mu))
    # conditional mean of a lognormal on [a, b]: E[X] * (Phi(z_b - sigma) - Phi(z_a - sigma)) / P
    from scipy.stats import norm

    z = (np.log(np.maximum(edges, 1e-300)) - mu) / sigma
    z[0], z[-1] = -np.inf, np.inf
    part = norm.cdf(z[1:] - sigma) - norm.cdf(z[:-1] - sigma)
    values = mean * part * bins
    return values, np.full(bins, 1.0 / bins)


def histogram_tokens(samples, bins: int = DEFAULT_TOKEN_BINS) -> tuple[np.ndarray, np.ndarray]:
    """Compress observed token counts into (at most) ``bins`` quantile bins valued at their means."""
    x = np.sort(np.asarray(samples, dtype=np.float64))
    if x.size == 0 or np.any(~np.isfinite(x)) or np.any(x < 0):
        raise _err("strong_step_tokens.samples", "needs at least one finite non-negative token count")
    parts = [p for p in np.array_split(x, min(bins, x.size)) if p.size]
    values = np.array([p.mean() for p in parts])
    probs = np.array([p.size for p in parts], dtype=np.float64) / x.size
    return values, probs


def hazard_from_pmf(pmf: np.ndarray) -> np.ndarray:
    """h(t) = P(L = t | L >= t): the probability that the solution ends after step t (h(T) = 1)."""
    surv = np.cumsum(pmf[::-1])[::-1]
    h = np.divide(pmf, surv, out=np.ones_like(pmf), where=surv > 1e-300)
    h[-1] = 1.0
    return np.clip(h, 0.0, 1.0)


def pmf_from_hazard(h: np.ndarray) -> np.ndarray:
    h = np.asarray(h, dtype=np.float64).copy()
    h[-1] = 1.0
    surv = np.concatenate([[1.0], np.cumprod(1.0 - h)[:-1]])
    return surv * h


@dataclass
class TrimModel:
    """The routing POMDP's parameters; ``obs`` is P(observation bin | correct, fresh_error, derailed)."""

    obs: BinnedObservationModel
    p_weak: float
    p_strong: float
    length_pmf: np.ndarray  # P(solution has t steps), t = 1..max_steps
    token_values: np.ndarray  # strong tokens of a regenerated (future) step
    token_probs: np.ndarray
    reward: float = 100.0
    discount: float = 1.0 - 1e-6
    tokens_per_weak_token: float = 1.0
    obs_path: str | None = None
    info: dict = field(default_factory=dict)
    #: optional (3, n_bins) distribution observations are really drawn from (histogram of labelled points);
    #: used to *evaluate* policies (predicted accuracy / tokens), never to plan
    obs_truth: np.ndarray | None = None
    points_path: str | None = None
    #: the spec file this model was read from (None when built in memory)
    source: str | None = field(default=None, compare=False, repr=False)
    #: 'current' (the step's PRM score, each counted once by the recursive filter) or 'pair' ((min earlier
    #: score, current score), the version-1 reading); None: 'pair' for a 2-D table, 'current' for 1-D
    observation: str | None = None
    #: latent difficulty classes (``routing.difficulty``); None: one class with (p_weak, p_strong)
    difficulty: Difficulty | None = None
    #: share of derailed steps the PRM scores like a fresh error (later derailed steps look more and more
    #: wrong, while the labelled data hold only the first step after an error). It is applied to raw inputs
    #: only: the table a spec file names and labelled points; ``obs`` and ``obs_truth`` arrays are final.
    derailed_as_error: float = 0.0
    #: chance that a strong rewrite of a step in a derailed solution repairs it (the rewrite sees the whole
    #: prefix and may route around the error); 0 in the TRIM formulation, fitted by calibration
    derailed_repair: float = 0.0

    def __post_init__(self):
        self._resolve_observation()
        if self.difficulty is not None:
            self.difficulty = self.difficulty.check()
            if self.difficulty.n == 1:  # one class is the plain model
                self.p_weak, self.p_strong = float(self.difficulty.p_weak[0]), float(self.difficulty.p_strong[0])
                self.difficulty = None
        if not (isinstance(self.derailed_as_error, (int, float)) and 0.0 <= self.derailed_as_error < 1.0):
            raise _err("derailed_as_error", f"must lie in [0, 1), got {self.derailed_as_error!r}")
        if not (isinstance(self.derailed_repair, (int, float)) and 0.0 <= self.derailed_repair <= 1.0):
            raise _err("derailed_repair", f"must lie in [0, 1], got {self.derailed_repair!r}")
        if isinstance(self.obs_truth, dict):
            self.obs_truth = self.points_histogram(self.obs_truth)
        self.length_pmf = np.asarray(self.length_pmf, dtype=np.float64).ravel()
        self.token_values = np.asarray(self.token_values, dtype=np.float64).ravel()
        self.token_probs = np.asarray(self.token_probs, dtype=np.float64).ravel()
        self.validate()
        order = np.argsort(self.token_values, kind="stable")
        self.token_values, self.token_probs = (
            self.token_values[order],
            self.token_probs[order] / self.token_probs.sum(),
        )
        self.length_pmf = self.length_pmf / self.length_pmf.sum()

    # ------------------------------------------------------------------ checks and derived values
    def validate(self) -> None:
        for name in ("p_weak", "p_strong"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float, np.floating)) and 0.0 < float(v) < 1.0):
                raise _err(name, f"must be an accuracy strictly between 0 and 1, got {v!r}")
        if not (np.isfinite(self.reward) and self.reward > 0):
            raise _err("reward", f"must be a positive number, got {self.reward!r}")
        if not (0.0 < self.discount <= 1.0):
            raise _err("discount", f"must lie in (0, 1], got {self.discount!r}")
        if not (np.isfinite(self.tokens_per_weak_token) and self.tokens_per_weak_token >= 0):
            raise _err("tokens_per_weak_token", "must be a non-negative number")
        pmf = self.length_pmf
        if pmf.size == 0:
            raise _err("length_distribution", "is empty; give a pmf over steps 1..max_steps")
        if np.any(~np.isfinite(pmf)) or np.any(pmf < 0) or pmf.sum() <= 0:
            raise _err("length_distribution", "must be finite, non-negative and not all zero")
        v, p = self.token_values, self.token_probs
        if v.size == 0 or v.size != p.size:
            raise _err(
                "strong_step_tokens", f"needs matching non-empty values and probs ({v.size} vs {p.size})"
            )
        if (
            np.any(~np.isfinite(v))
            or np.any(v < 0)
            or np.any(p < 0)
            or not np.isfinite(p.sum())
            or p.sum() <= 0
        ):
            raise _err("strong_step_tokens", "values must be >= 0 and probs non-negative with a positive sum")
        if tuple(self.obs.states) != TRIM_STATES:
            raise _err(
                "observation_model",
                f"must have states {list(TRIM_STATES)}, found {schemas.quote(list(self.obs.states))}",
                self.obs_path,
            )
        if self.obs.dims not in (1, 2):
            raise _err(
                "observation_model",
                f"must be 1-D (current score) or 2-D (min earlier score, current score), found {self.obs.dims}-D",
                self.obs_path,
            )

    def observation_truth(self) -> np.ndarray:
        return self.obs.probs if self.obs_truth is None else self.obs_truth

    def _resolve_observation(self) -> None:
        """Read the table as the named observation model: 'current' sums a 2-D table's min-earlier
        coordinate out (the same fitted density), so one fitted table serves every option."""
        kind = self.observation
        if kind is None:
            kind = "pair" if self.obs.dims == 2 else "current"
        if kind in ("conditional", "reference"):
            raise _err("observation", f"{kind!r} is evaluated by fit-obs --evaluate but not planned: the "
                       "conditional model makes the min-earlier score an observed state (a MOMDP level) and the "
                       "reference rule is no Bayes filter; use 'current' or 'pair'", self.obs_path)
        if kind not in OBSERVATIONS:
            raise _err("observation", f"expected one of {', '.join(OBSERVATIONS)}, found {schemas.quote(kind)}",
                       self.obs_path)
        if kind == "pair" and self.obs.dims != 2:
            raise _err("observation", "'pair' needs a 2-D table (min earlier score, current score); this one "
                       "is 1-D", self.obs_path)
        if kind == "current" and self.obs.dims == 2:
            self.obs = self.obs.marginal(1)
        self.observation = kind

    def obs_bins(self, pairs) -> np.ndarray | int:
        """Bins of observation pairs (..., 2) = (min earlier score, current score) in this model's table:
        the one mapping the filter, the planner's policies, the simulator and decode all use."""
        o = np.asarray(pairs, dtype=np.float64)
        if self.obs.dims == 2:
            return self.obs.bin_index(o)
        idx = np.asarray(self.obs.bin_index(o[..., 1].reshape(-1, 1))).reshape(o.shape[:-1])
        return int(idx) if idx.ndim == 0 else idx

    def points_histogram(self, points: dict) -> np.ndarray:
        """P(bin | state) of real labelled points {'correct': (n, 2), ...} on the model's bins (derailed
        steps scored as fresh errors with probability ``derailed_as_error``)."""
        H = np.zeros_like(self.obs.probs)
        for i, s in enumerate(TRIM_STATES):
            idx = np.atleast_1d(self.obs_bins(points[s]))
            H[i] = np.bincount(idx, minlength=self.obs.n_bins) / idx.size
        return mix_derailed(H, self.derailed_as_error)

    @property
    def n_classes(self) -> int:
        return 1 if self.difficulty is None else self.difficulty.n

    @property
    def classes(self) -> Difficulty:
        """The difficulty classes (one class of (p_weak, p_strong) for a plain spec)."""
        return self.difficulty if self.difficulty is not None else Difficulty.single(self.p_weak, self.p_strong)

    @property
    def n_hidden(self) -> int:
        """Length of a belief: 3 per difficulty class."""
        return 3 * self.n_classes

    def joint_transition(self, action) -> np.ndarray:
        """T over the 3K hidden values (block-diagonal over classes; ``transition`` for a plain spec)."""
        return difficulty.transition(self.classes, action, self.derailed_repair)

    @property
    def structured(self) -> bool:
        """Whether the structured 1-D solver applies (one class, derailed solutions never repaired)."""
        return self.difficulty is None and not self.derailed_repair

    def joint_obs(self) -> np.ndarray:
        """P(observation bin | hidden value) for the 3K hidden values (the table's rows per class)."""
        return difficulty.tile(self.obs.probs, self.n_classes)

    @property
    def max_steps(self) -> int:
        return int(self.length_pmf.size)

    @property
    def hazard(self) -> np.ndarray:
        return hazard_from_pmf(self.length_pmf)

    @property
    def mean_steps(self) -> float:
        return float(np.arange(1, self.max_steps + 1) @ self.length_pmf)

    @property
    def mean_step_tokens(self) -> float:
        return float(self.token_values @ self.token_probs)

    def transition(self, action) -> np.ndarray:
        """T[s, s'] for 'keep' / 'regenerate' (rows C, E, D) as in the formulation's table, with the spec's
        scalar accuracies (one class)."""
        return difficulty.transition(Difficulty.single(self.p_weak, self.p_strong), action, self.derailed_repair)

    def step_cost_tokens(self, n_tokens) -> np.ndarray | float:
        """Strong tokens a regeneration of the current step is expected to cost, given its weak tokens."""
        return self.tokens_per_weak_token * np.asarray(n_tokens, dtype=np.float64)

    def fingerprint(self) -> str:
        import hashlib

        h = hashlib.sha256()
        for arr in (
            self.obs.probs,
            self.length_pmf,
            self.token_values,
            self.token_probs,
            np.array([self.p_weak, self.p_strong, self.reward, self.discount, self.tokens_per_weak_token]),
        ) + (() if self.difficulty is None and not (self.derailed_as_error or self.derailed_repair) else (
                self.classes.weights, self.classes.p_weak, self.classes.p_strong,
                np.array([self.derailed_as_error, self.derailed_repair]))):
            h.update(np.round(np.asarray(arr, dtype=np.float64), 12).tobytes())
        return h.hexdigest()[:16]

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self, obs_ref: str | None = None) -> dict:
        d = {
            "format": FORMAT,
            "version": VERSION,
            "observation_model": obs_ref if obs_ref is not None else self.obs_path,
            "p_weak": float(self.p_weak),
            "p_strong": float(self.p_strong),
            "reward": float(self.reward),
            "discount": float(self.discount),
            "max_steps": self.max_steps,
            "length_distribution": {"pmf": [float(x) for x in self.length_pmf]},
            "strong_step_tokens": {
                "values": [float(x) for x in self.token_values],
                "probs": [float(x) for x in self.token_probs],
            },
            "tokens_per_weak_token": float(self.tokens_per_weak_token),
            "observation": self.observation,
        }
        if self.difficulty is not None:
            d["classes"] = self.difficulty.to_dict()
        if self.derailed_as_error:
            d["derailed_as_error"] = float(self.derailed_as_error)
        if self.derailed_repair:
            d["derailed_repair"] = float(self.derailed_repair)
        if self.points_path:
            d["observation_points"] = self.points_path
        if self.info:
            d["info"] = self.info
        return d

    def embedded_dict(self) -> dict:
        """Everything but the observation tables (which callers store as arrays), for policy files."""
        d = self.to_dict(obs_ref=None)
        d["observation_model"] = None
        d.pop("observation_points", None)
        d["obs_bin_size"] = float(self.obs.bin_size)
        return d

    @classmethod
    def from_dict(
        cls, d: dict, base_dir=None, obs: BinnedObservationModel | None = None, source=None
    ) -> "TrimModel":
        if not isinstance(d, dict):
            raise _err("<root>", "a TRIM spec must be a JSON object", source)
        if d.get("format") != FORMAT:
            raise _err("format", f"expected {FORMAT!r}, found {schemas.quote(d.get('format'))}", source)
        if isinstance(d.get("version"), bool) or not isinstance(d.get("version"), int) or not (
            1 <= d["version"] <= VERSION
        ):
            found = schemas.quote(d.get("version"))
            raise _err("version", f"expected an integer 1..{VERSION}, found {found}", source)
        # every field's type and range (and the files it names) before any of them is used
        fields = schemas.SPEC_FIELDS if obs is None else schemas.EMBEDDED_SPEC_FIELDS
        if obs is not None:
            fields = tuple(f for f in fields if f.name != "obs_bin_size")
        schemas.check_fields(fields, d, source, base_dir=base_dir)
        if obs is None:
            ref = d.get("observation_model")
            if not isinstance(ref, str) or not ref:
                raise _err("observation_model", "must be the path of a bins table (.npz)", source)
            p = Path(ref)
            if not p.is_absolute() and base_dir is not None:
                p = Path(base_dir) / p
            obs = load_observation_model(p)
            obs_path = ref
            alpha = d.get("derailed_as_error", 0.0)
            if isinstance(alpha, (int, float)) and not isinstance(alpha, bool) and 0 < alpha < 1:
                obs = mix_derailed_model(obs, alpha)
        else:
            obs_path = d.get("observation_model")
        T = d.get("max_steps")
        ld = d["length_distribution"]
        if not isinstance(ld, dict):
            raise _err("length_distribution", "must be an object with 'pmf' or 'hazard'", source)
        try:
            if "pmf" in ld:
                pmf = np.asarray(ld["pmf"], dtype=np.float64).ravel()
            elif "hazard" in ld:
                hz = np.asarray(ld["hazard"], dtype=np.float64).ravel()
                if hz.size == 0:
                    raise _err("length_distribution.hazard", "is empty", source)
                if np.any(~np.isfinite(hz)) or np.any(hz < 0) or np.any(hz > 1):
                    raise _err("length_distribution.hazard", "values must lie in [0, 1]", source)
                pmf = pmf_from_hazard(hz)
            else:
                raise _err("length_distribution", "needs a 'pmf' or a 'hazard' list", source)
        except (TypeError, ValueError) as exc:
            if isinstance(exc, TrimError):
                raise
            raise _err("length_distribution", f"must be a list of numbers ({exc})", source) from None
        if T is not None:
            if not isinstance(T, int) or T < 1:
                raise _err("max_steps", f"must be a positive integer, got {T!r}", source)
            if pmf.size != T:
                raise _err("length_distribution", f"has {pmf.size} entries but max_steps is {T}", source)
        st = d["strong_step_tokens"]
        if not isinstance(st, dict):
            raise _err("strong_step_tokens", "must be an object with 'values'+'probs' or 'samples'", source)
        try:
            if "samples" in st:
                values, probs = histogram_tokens(st["samples"], int(st.get("bins", DEFAULT_TOKEN_BINS)))
            elif "lognormal" in st:
                ln = st["lognormal"]
                values, probs = lognormal_bins(
                    float(ln["mean"]),
                    float(ln.get("sigma", DEFAULT_TOKEN_SIGMA)),
                    int(ln.get("bins", DEFAULT_TOKEN_BINS)),
                )
            else:
                values = np.asarray(st.get("values", []), dtype=np.float64)
                probs = np.asarray(st.get("probs", np.ones(values.size)), dtype=np.float64)
        except (TypeError, ValueError, KeyError) as exc:
            if isinstance(exc, TrimError):
                raise
            raise _err("strong_step_tokens", f"must hold numbers ({exc})", source) from None
        obs_truth, points_path = None, d.get("observation_points")
        if points_path is not None:
            if not isinstance(points_path, str):
                raise _err("observation_points", "must be the path of labelled PRM points (.npz)", source)
            pp = Path(points_path)
            if not pp.is_absolute() and base_dir is not None:
                pp = Path(base_dir) / pp
            if base_dir is not None or pp.exists():
                obs_truth = load_observation_points(pp)
        classes = None
        if d.get("classes") is not None:
            try:
                classes = Difficulty.from_dict(d["classes"])
            except TrimError as exc:
                raise TrimError(f"{source}: {exc}" if source else str(exc)) from None
        for key in ("p_weak", "p_strong"):
            if key not in d and classes is None:
                raise _err(key, "is required (or give 'classes')", source)
        try:
            return cls(
                obs=obs,
                p_weak=_num(d, "p_weak", source, None if classes is None else float(
                    classes.weights @ classes.p_weak)),
                p_strong=_num(d, "p_strong", source, None if classes is None else float(
                    classes.weights @ classes.p_strong)),
                difficulty=classes,
                derailed_as_error=_num(d, "derailed_as_error", source, 0.0),
                derailed_repair=_num(d, "derailed_repair", source, 0.0),
                length_pmf=pmf,
                token_values=values,
                token_probs=probs,
                reward=_num(d, "reward", source, 100.0),
                discount=_num(d, "discount", source, 1.0 - 1e-6),
                tokens_per_weak_token=_num(d, "tokens_per_weak_token", source, 1.0),
                obs_path=obs_path,
                info=dict(d.get("info") or {}),
                obs_truth=obs_truth,
                points_path=points_path,
                observation=d.get("observation"),
            )
        except TrimError as exc:
            if source and not str(exc).startswith(str(source)):
                raise TrimError(f"{source}: {exc}") from None
            raise

    @classmethod
    def load(cls, path) -> "TrimModel":
        path = Path(path)
        problem = schemas.file_problem(path, kind="json")
        if problem:
            raise FormatError("file not found" if problem == "does not exist" else problem, str(path))
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise FormatError(f"not valid JSON: {exc.msg}", str(path), exc.lineno) from None
        except (UnicodeDecodeError, RecursionError) as exc:
            raise FormatError(f"not a JSON spec ({exc.__class__.__name__})", str(path)) from None
        tm = cls.from_dict(d, base_dir=path.parent, source=str(path))
        tm.source = str(path)
        return tm

    def absolute_points_path(self, spec_dir) -> Path | None:
        if not self.points_path:
            return None
        p = Path(self.points_path)
        return p if p.is_absolute() else Path(spec_dir) / p

    def save(self, path, obs_ref: str | None = None) -> Path:
        """Write the spec; the observation table is referenced (relative to the spec) and written if new."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        ref = obs_ref or self.obs_path
        if ref is None:
            ref = path.stem + "_obs.npz"
        target = Path(ref) if Path(ref).is_absolute() else path.parent / ref
        if not target.exists():
            self.obs.save(target)
        path.write_text(json.dumps(self.to_dict(obs_ref=str(ref)), indent=1) + "\n")
        return path

    @classmethod
    def from_step_stats(
        cls,
        npz,
        weak: str,
        strong: str,
        obs_path,
        *,
        reward: float = 100.0,
        max_steps: int = 30,
        p_weak: float | None = None,
        p_strong: float | None = None,
        mean_step_tokens: float = DEFAULT_STEP_TOKENS,
        token_sigma: float = DEFAULT_TOKEN_SIGMA,
        token_bins: int = DEFAULT_TOKEN_BINS,
        discount: float = 1.0 - 1e-6,
    ) -> "TrimModel":
        """Estimate p_w, p_s (``next_step_accuracy``) and the length pmf from step statistics.

        The length distribution is the *empirical* pmf of the weak model's correct-solution step counts
        clipped to [1, max_steps] (the reference smooths counts clipped to [2, 30] with a KDE instead).
        """
        from trimpomdp.artifacts import read_npz

        npz = Path(npz)
        data = read_npz(npz)
        models = sorted({k.split("__")[0] for k in data})

        def get(model, key, kind):
            k = f"{model}__{key}"
            if k not in data:
                raise FormatError(f"no array {k!r} (models in file: {', '.join(models)})", str(npz))
            arr = data[k]
            if arr.dtype.kind not in kind or (arr.dtype.kind == "f" and not np.all(np.isfinite(arr))):
                raise FormatError(f"array {k!r}: must hold finite numbers, found dtype {arr.dtype}", str(npz))
            return arr

        def accuracy(model):
            a = get(model, "next_step_accuracy", "fiu")
            if a.size != 1:
                raise FormatError(f"array '{model}__next_step_accuracy': must be one number, got shape {a.shape}",
                                  str(npz))
            return float(a.ravel()[0])

        pw = accuracy(weak) if p_weak is None else float(p_weak)
        ps = accuracy(strong) if p_strong is None else float(p_strong)
        steps = np.clip(get(weak, "correct_solution_steps", "iu").astype(np.int64).ravel(), 1, max_steps)
        if steps.size == 0:
            raise _err("length_distribution", f"{weak}__correct_solution_steps is empty", npz)
        pmf = np.bincount(steps, minlength=max_steps + 1)[1:].astype(np.float64)
        values, probs = lognormal_bins(mean_step_tokens, token_sigma, token_bins)
        obs = load_observation_model(obs_path)
        info = {
            "weak": weak,
            "strong": strong,
            "step_stats": npz.name,
            "length_source": "empirical pmf of weak correct_solution_steps clipped to [1, max_steps]",
            "token_source": f"lognormal mean {mean_step_tokens:.4g} sigma {token_sigma} in {token_bins} bins",
        }
        return cls(
            obs=obs,
            p_weak=pw,
            p_strong=ps,
            length_pmf=pmf,
            token_values=values,
            token_probs=probs,
            reward=reward,
            discount=discount,
            obs_path=str(obs_path),
            info=info,
        )


def _num(d, key, source, default=None) -> float:
    v = d.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _err(key, f"must be a number, got {v!r}", source)
    return float(v)


def mix_derailed(probs: np.ndarray, alpha: float) -> np.ndarray:
    """Rows (C, E, D) with D's replaced by (1 - alpha) D + alpha E."""
    P = np.array(probs, dtype=np.float64)
    if alpha:
        P[2] = (1.0 - alpha) * P[2] + alpha * P[1]
    return P


def mix_derailed_model(obs: BinnedObservationModel, alpha: float) -> BinnedObservationModel:
    """The table ``obs`` with derailed steps scored like fresh errors with probability ``alpha``."""
    return BinnedObservationModel(obs.states, obs.centers, mix_derailed(obs.probs, alpha), obs.bin_size)


def load_observation_model(path) -> BinnedObservationModel:
    """The TRIM observation model in ``path``: a fitted model (discretised) or a bins table."""
    from trimpomdp.observation_models.io import load_binned

    path = Path(path)
    problem = schemas.file_problem(path)
    if problem:
        raise _err("observation_model", "file not found" if problem == "does not exist" else problem, path)
    from trimpomdp.errors import ModelError
    from trimpomdp.observation_models.discretize import check_grid

    obs = load_binned(path)
    if tuple(obs.states) != TRIM_STATES:
        raise _err(
            "observation_model",
            f"must have states {list(TRIM_STATES)}, found {schemas.quote(list(obs.states))}",
            path,
        )
    try:  # a bins table is read as given; its grid must be one the solver can handle
        check_grid(obs.bin_size, obs.dims)
    except ModelError as exc:
        raise FormatError(str(exc), str(path)) from None
    return obs


def write_spec(tm: TrimModel, output, obs_path, points_path=None) -> Path:
    """Save ``tm`` as a spec JSON that names its observation model (and labelled points, whose histogram
    becomes the simulator's observation truth) by paths relative to the spec, so the three travel together."""
    import os

    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    obs_ref = os.path.relpath(Path(obs_path).resolve(), out.parent.resolve())
    if points_path is not None:
        tm.obs_truth = tm.points_histogram(load_observation_points(points_path))
        tm.points_path = os.path.relpath(Path(points_path).resolve(), out.parent.resolve())
    return tm.save(out, obs_ref=obs_ref)


def load_observation_points(path) -> dict[str, np.ndarray]:
    """The labelled PRM observation points per state: {'correct': (n, 2), ...}."""
    from trimpomdp.artifacts import read_npz

    path = Path(path)
    z = read_npz(path)
    missing = [s for s in TRIM_STATES if s not in z]
    if missing:
        raise FormatError(f"expected arrays {list(TRIM_STATES)} of (n, 2) points, missing {missing}",
                          str(path))
    schema = schemas.observation_points(TRIM_STATES)
    data, _ = schemas.validate(schema, {s: z[s] for s in TRIM_STATES}, {}, path)
    return data
