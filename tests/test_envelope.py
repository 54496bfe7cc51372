"""The one upper-envelope kernel shared by the exact solver and the structured routing solver."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from trimpomdp.solvers.envelope import envelope_lines

lines = st.lists(st.tuples(st.integers(-20, 20), st.integers(-20, 20)), min_size=1, max_size=12)


@settings(max_examples=300, deadline=None)
@given(lines, st.sampled_from([1, 4, 10]))
def test_envelope_is_the_max_of_the_lines_on_the_unit_interval(pairs, scale):
    """Coarse integer lines (ties, shared crossing points, parallel lines) exercise every degenerate case."""
    s = np.array([p[0] for p in pairs], dtype=float) / scale
    c = np.array([p[1] for p in pairs], dtype=float) / scale
    es, ec, eb = envelope_lines(s, c)
    x = np.linspace(0, 1, 257)
    want = np.max(s[:, None] * x + c[:, None], axis=0)
    got = np.max(es[:, None] * x + ec[:, None], axis=0)
    np.testing.assert_allclose(got, want, atol=1e-12)
    assert np.all(np.diff(es) > 0) and np.isinf(eb[-1])
    # each kept line is the maximum on its own piece [previous breakpoint, its breakpoint] within [0, 1]
    left = np.concatenate([[0.0], eb[:-1]])
    for k in range(es.size):
        mid = 0.5 * (max(left[k], 0.0) + min(eb[k], 1.0))
        assert np.isclose(es[k] * mid + ec[k], np.max(s * mid + c), atol=1e-12)
        assert max(left[k], 0.0) < min(eb[k], 1.0)  # no line that only touches the envelope
