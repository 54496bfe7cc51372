"""Reflected KDE: exact normalisation, reflection, exact bins, bandwidth rules, reference agreement, I/O."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.polynomial.legendre import leggauss
from scipy import integrate
from scipy.stats import multivariate_normal

from trimpomdp.errors import FormatError, ModelError, TrimError
from trimpomdp.observation_models import BinnedObservationModel, ReflectedKDE, load_binned
from trimpomdp.observation_models import _kde_kernels as K
from trimpomdp.observation_models import bandwidth as bw
from trimpomdp.observation_models.io import load_obs_model, save_obs_model
from trimpomdp.observation_models.kde import reflect

STATES = ("correct", "fresh_error", "derailed")


def _gl_box(n=120):
    x, w = leggauss(n)
    return (x + 1) / 2, w / 2


def _small2d(seed=0, n=25):
    rng = np.random.default_rng(seed)
    X = np.clip(rng.beta(2, 1.2, size=(n, 2)), 0, 1)
    return X, np.array(["a"] * n)


@pytest.fixture(scope="module")
def shared_xy(data_dir):
    z = np.load(data_dir / "prm_obs_processbench_math.npz")
    X = np.concatenate([z[s] for s in STATES])
    y = np.repeat(STATES, [len(z[s]) for s in STATES])
    return X, y


# ----------------------------------------------------------------------------- bivariate normal CDF
@pytest.mark.parametrize("r", [-0.99, -0.94, -0.6, -0.2, 0.0, 0.1, 0.5, 0.8, 0.93, 0.995])
def test_bvn_cdf_matches_scipy(r):
    rng = np.random.default_rng(int(abs(r) * 1000))
    mvn = multivariate_normal(mean=[0, 0], cov=[[1, r], [r, 1]], abseps=1e-12, releps=1e-12)
    for h, k in rng.normal(scale=2.0, size=(8, 2)):
        assert abs(K.bvn_cdf(h, k, r) - mvn.cdf([h, k])) < 1e-10


# ----------------------------------------------------------------------------- normalisation / reflection
def test_density_integrates_to_one_1d_and_plain_normalisation_would_not():
    X = np.array([0.02, 0.1, 0.5, 0.93, 0.99, 0.7])
    m = ReflectedKDE(bandwidth=0.5).fit(X, ["s"] * len(X))
    val, err = integrate.quad(lambda z: m.density([z], "s")[0], 0, 1, epsabs=1e-12, epsrel=1e-12, limit=200)
    assert abs(val - 1.0) < 1e-6
    d = m._dens["s"]
    assert abs(d.Z / len(X) - 1.0) > 1e-3  # the 3-copy reflection alone leaks mass at this bandwidth


def test_density_integrates_to_one_2d_full_covariance():
    X, y = _small2d()
    H = np.array([[0.25, 0.1], [0.1, 0.2]])
    m = ReflectedKDE(bandwidth=H).fit(X, y)
    x, w = _gl_box(100)
    G0, G1 = np.meshgrid(x, x, indexing="ij")
    vals = m.density(np.stack([G0.ravel(), G1.ravel()], 1), "a").reshape(G0.shape)
    assert abs(w @ vals @ w - 1.0) < 1e-6
    assert abs(m._dens["a"].Z / len(X) - 1.0) > 1e-4


def test_normal_derivative_vanishes_at_edges():
    X, y = _small2d(1)
    H = np.array([[0.012, 0.004], [0.004, 0.01]])
    m = ReflectedKDE(bandwidth=H).fit(X, y)
    eps = 1e-6
    for t in np.linspace(0.05, 0.95, 7):
        for edge, inward in ((0.0, 1), (1.0, -1)):
            for j in (0, 1):
                p0, p1 = np.array([t, t]), np.array([t, t])
                p0[j], p1[j] = edge, edge + inward * eps
                f0, f1 = m.density(np.stack([p0, p1]), "a")
                slope = abs(f1 - f0) / eps
                assert slope < 1e-3 * max(f0, 1e-3) / 0.1  # O(eps f'') against a typical f / sd of 10 f
    # a one-sided (non-reflected) kernel sum has a clearly non-zero slope there
    m1 = ReflectedKDE(bandwidth=0.1).fit(np.array([0.05, 0.3]), ["a", "a"])
    f0, f1 = m1.density(np.array([0.0, eps]), "a")
    assert abs(f1 - f0) / eps < 1e-3
    plain = lambda z: np.exp(-0.5 * ((z - 0.05) / 0.1) ** 2)  # noqa: E731
    assert abs(plain(eps) - plain(0.0)) / eps > 1.0


# ----------------------------------------------------------------------------- exact bins
def test_bins_equal_integrated_density_1d():
    X = np.array([0.05, 0.2, 0.21, 0.8, 1.0])
    m = ReflectedKDE(bandwidth=0.08).fit(X, ["s"] * 5)
    b = m.discretize(0.1)
    for k in (0, 3, 9):
        val, _ = integrate.quad(lambda z: m.density([z], "s")[0], k / 10, (k + 1) / 10, epsabs=1e-13)
        assert abs(b.probs[0, k] - val) < 1e-9
    assert abs(b.probs.sum() - 1) < 1e-12


def test_bins_equal_integrated_density_2d_full():
    X, y = _small2d(2, 15)
    H = np.array([[0.02, -0.012], [-0.012, 0.015]])
    m = ReflectedKDE(bandwidth=H).fit(X, y)
    b = m.discretize(0.25)
    x, w = leggauss(40)
    for k in (0, 5, 10, 15):
        i, j = divmod(k, 4)  # row-major, last coordinate fastest
        xs0, xs1 = (x + 1) / 8 + i / 4, (x + 1) / 8 + j / 4
        G0, G1 = np.meshgrid(xs0, xs1, indexing="ij")
        vals = m.density(np.stack([G0.ravel(), G1.ravel()], 1), "a").reshape(G0.shape)
        assert abs(b.probs[0, k] - (w / 8) @ vals @ (w / 8)) < 1e-8
    assert np.allclose(b.centers[k], [(i + 0.5) / 4, (j + 0.5) / 4])


def test_full_kernel_path_agrees_with_diagonal_path():
    X, y = _small2d(3)
    a = ReflectedKDE(bandwidth=np.diag([0.01, 0.02])).fit(X, y).discretize(0.05).probs
    H = np.array([[0.01, 1e-12], [1e-12, 0.02]])
    b = ReflectedKDE(bandwidth=H).fit(X, y).discretize(0.05).probs
    assert np.abs(a - b).max() < 1e-10


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(d=st.sampled_from([1, 2]), n=st.integers(1, 12), h=st.floats(0.003, 3.0),
       rho=st.floats(-0.97, 0.97), bin_size=st.sampled_from([0.05, 0.1, 0.2, 0.25, 0.5, 1.0]),
       seed=st.integers(0, 2**16))
def test_bin_probabilities_nonnegative_and_normalised(d, n, h, rho, bin_size, seed):
    X = np.random.default_rng(seed).uniform(size=(n, d))
    H = h if d == 1 else np.array([[h * h, rho * h * 0.7 * h], [rho * h * 0.7 * h, (0.7 * h) ** 2]])
    b = ReflectedKDE(bandwidth=H).fit(X, ["s"] * n).discretize(bin_size)
    assert b.probs.shape == (1, round(1 / bin_size) ** d)
    assert np.all(b.probs >= 0)
    assert abs(b.probs.sum() - 1.0) < 1e-9


# ----------------------------------------------------------------------------- reference and rules
def test_scott_fit_matches_reference_table(shared_xy, data_dir):
    X, y = shared_xy
    ours = ReflectedKDE(bandwidth="scott").fit(X, y).discretize(0.05)
    ref = BinnedObservationModel.load(data_dir / "anchor_obs_bins_math_0.05.npz")
    assert np.allclose(ours.centers, ref.centers)
    for i, s in enumerate(STATES):
        tv = 0.5 * np.abs(ours.probs[i] - ref.probs[ref.states.index(s)]).sum()
        assert tv < 0.05, (s, tv)


def test_scott_and_silverman_matrices():
    X, y = _small2d(4, 40)
    cov = np.cov(X.T)
    Hs = ReflectedKDE(bandwidth="scott").fit(X, y).bandwidths_["a"]
    assert np.allclose(Hs, 40 ** (-2 / 6) * cov)
    Hv = ReflectedKDE(bandwidth="silverman", covariance="diag").fit(X, y).bandwidths_["a"]
    assert np.allclose(Hv, (40 * 4 / 4) ** (-2 / 6) * np.diag(np.diag(cov)))


def test_loo_loglik_equals_brute_force_refits():
    X, y = _small2d(5, 12)
    H = np.array([[0.02, 0.005], [0.005, 0.03]])
    C, cs, ow = reflect(X)
    fast = bw.loo_log_likelihood(X, C, cs, ow, H)
    brute = sum(np.log(ReflectedKDE(bandwidth=H).fit(np.delete(X, i, 0), y[:-1]).density(X[i:i + 1], "a")[0])
                for i in range(len(X)))
    assert abs(fast - brute) < 1e-9


def test_cv_scale_maximises_loo_likelihood():
    rng = np.random.default_rng(6)
    X = np.clip(np.concatenate([rng.normal(0.2, 0.05, (40, 1)), rng.normal(0.8, 0.05, (40, 1))]), 0, 1)
    m = ReflectedKDE(bandwidth="cv").fit(X, ["s"] * 80)
    s = m.cv_scales_["s"]
    H0 = bw.scott_factor(80, 1) ** 2 * np.cov(X.T).reshape(1, 1)
    C, cs, ow = reflect(X)
    best = bw.loo_log_likelihood(X, C, cs, ow, s * s * H0)
    assert abs(best - m.cv_loglik_["s"]) < 1e-9
    for other in (0.5 * s, 0.8 * s, 1.25 * s, 2 * s, 1.0):
        assert bw.loo_log_likelihood(X, C, cs, ow, other**2 * H0) <= best + 1e-9
    assert s < 0.9  # bimodal data: Scott's Gaussian rule over-smooths


# ----------------------------------------------------------------------------- queries
def test_likelihood_posterior_and_bin_index():
    rng = np.random.default_rng(7)
    X = np.concatenate([rng.uniform(0, 0.4, (30, 2)), rng.uniform(0.6, 1, (30, 2))])
    y = ["lo"] * 30 + ["hi"] * 30
    m = ReflectedKDE(bandwidth="scott", states=("lo", "hi")).fit(X, y)
    L = m.likelihood(X[:5])
    assert L.shape == (5, 2)
    assert np.allclose(L[:, 0], np.exp(m.log_density(X[:5], "lo")))
    assert np.allclose(np.exp(m.score_samples(X[:5])), L)  # scikit-learn layout: (n, n_states)
    assert np.allclose(m.predict_proba(X[:5]), m.posterior(X[:5]))
    assert list(m.predict([[0.1, 0.1], [0.9, 0.9]])) == ["lo", "hi"]
    assert m.likelihood([0.1, 0.1]).shape == (2,)
    post = m.posterior([[0.1, 0.1], [0.9, 0.9]])
    assert np.allclose(post.sum(1), 1) and post[0, 0] > 0.9 and post[1, 1] > 0.9
    skew = m.posterior([0.5, 0.5], prior=[0.99, 0.01])
    assert skew[0] > m.posterior([0.5, 0.5])[0]
    assert m.bin_index([0.07, 0.97]) == 1 * 20 + 19
    assert m.bin_index([1.0, 1.0]) == 399


@pytest.mark.parametrize("X, y, kw, msg", [
    (np.array([[0.1, 0.2], [np.nan, 0.3]]), ["a", "a"], {}, "NaN"),
    (np.array([[0.1, 0.2], [1.2, 0.3]]), ["a", "a"], {}, "outside"),
    (np.array([[0.1, 0.2], [0.5, 0.3]]), ["a"], {}, "labels"),
    (np.full((3, 3), 0.5), ["a"] * 3, {}, "coordinates"),
    (np.array([[0.1, 0.2]]), ["a"], {"bandwidth": "scott"}, "single point"),
    (np.array([[0.1, 0.2], [0.3, 0.2]]), ["a", "a"], {"bandwidth": "scott"}, "zero variance"),
    (np.array([[0.1, 0.2], [0.3, 0.4]]), ["a", "a"], {"states": ("a", "b"), "bandwidth": 0.1}, "no points"),
    (np.array([[0.1, 0.2], [0.3, 0.4]]), ["a", "c"], {"states": ("a",), "bandwidth": 0.1}, "not one of"),
    (np.array([[0.1, 0.2], [0.3, 0.4]]), ["a", "a"], {"bandwidth": "wide"}, "bandwidth"),
    (np.array([[0.1, 0.2], [0.3, 0.4]]), ["a", "a"], {"bandwidth": -0.1}, "positive"),
    (np.array([[0.1, 0.2], [0.3, 0.4]]), ["a", "a"], {"covariance": "tied"}, "covariance"),
])
def test_bad_inputs_raise_one_line_errors(X, y, kw, msg):
    with pytest.raises(ModelError, match=msg) as ei:
        ReflectedKDE(**kw).fit(X, y)
    assert "\n" not in str(ei.value)


def test_single_point_with_explicit_bandwidth_and_bad_bin_size():
    m = ReflectedKDE(bandwidth=0.1).fit([[0.5, 0.5]], ["a"])
    assert abs(m.discretize(0.1).probs.sum() - 1) < 1e-12
    with pytest.raises(ModelError, match="whole bins"):
        m.discretize(0.3)
    with pytest.raises(ModelError, match="outside"):
        m.likelihood([0.5, 1.5])


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=2, max_size=8))
def test_hypothesis_bad_values_give_our_errors(vals):
    X = np.array(vals, dtype=np.float64)[:, None]
    try:
        m = ReflectedKDE(bandwidth=0.2).fit(X, ["s"] * len(vals))
    except TrimError:
        assert not np.all((X >= 0) & (X <= 1))
    else:
        assert np.all((X >= 0) & (X <= 1))
        assert abs(m.discretize(0.1).probs.sum() - 1) < 1e-9


# ----------------------------------------------------------------------------- I/O
def test_save_load_roundtrip_and_load_binned(tmp_path):
    X, _ = _small2d(8, 30)
    y = np.array(["correct", "derailed"] * 15)
    m = ReflectedKDE(bandwidth="cv").fit(X, y)
    p = tmp_path / "obs.npz"
    save_obs_model(m, p, bin_size=0.1)
    m2 = load_obs_model(p)
    assert m2.states_ == m.states_
    assert np.array_equal(m.likelihood(X), m2.likelihood(X))
    b = load_binned(p)
    assert b.bin_size == 0.1 and b.n_bins == 100
    assert np.array_equal(b.probs, m.discretize(0.1).probs)
    assert load_binned(p, bin_size=0.05).n_bins == 400
    t = tmp_path / "bins.npz"
    b.save(t)
    assert np.array_equal(load_binned(t).probs, b.probs)
    with pytest.raises(FormatError, match="bin size"):
        load_binned(t, bin_size=0.05)
    with pytest.raises(FormatError, match="not found"):
        load_binned(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    np.savez(bad, junk=np.zeros(3))
    with pytest.raises(FormatError, match="_probs"):
        load_binned(bad)


def test_load_binned_reference_table(data_dir):
    b = load_binned(data_dir / "anchor_obs_bins_math_0.05.npz")
    assert b.states == STATES and b.n_bins == 400 and abs(b.bin_size - 0.05) < 1e-12
