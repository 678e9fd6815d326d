"""Property-based checks: any layout, shard and thread count against the reference."""

import numpy as np
import pytest

import reference as ref
import fastinit as fi

hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies


@st.composite
def layouts(draw):
    """A small array view (any strides, order, offset) inside a larger global shape."""
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.lists(st.integers(0, 9), min_size=ndim, max_size=ndim)))
    extra = tuple(draw(st.lists(st.integers(0, 4), min_size=ndim, max_size=ndim)))
    gshape = tuple(s + e for s, e in zip(shape, extra))
    offset = tuple(draw(st.integers(0, e)) for e in extra)
    steps = tuple(draw(st.sampled_from([1, 2, -1, -2])) for _ in range(ndim))
    order = draw(st.sampled_from("CF"))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    return shape, gshape, offset, steps, order, dtype


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(layouts(), st.integers(1, 3), st.sampled_from(["uniform", "normal"]))
def test_any_layout_matches_the_reference(layout, threads, dist):
    shape, gshape, offset, steps, order, dtype = layout
    base = np.zeros(tuple(abs(st_) * max(s, 1) for s, st_ in zip(shape, steps)), dtype,
                    order=order)
    view = base[tuple(slice(None, None, st_) for st_ in steps)]
    view = view[tuple(slice(0, s) for s in shape)]
    assert view.shape == shape
    fi.set_num_threads(threads)
    try:
        g = fi.Generator(77)
        if dist == "uniform":
            g.uniform_(view, -1.0, 3.0, global_shape=gshape, global_offset=offset)
            want = ref.uniform_fill(g.state["key"], 0, shape, dtype, -1.0, 3.0,
                                    global_shape=gshape, global_offset=offset)
        else:
            g.normal_(view, global_shape=gshape, global_offset=offset)
            want = ref.normal_fill(g.state["key"], 0, shape, dtype, global_shape=gshape,
                                   global_offset=offset)
    finally:
        fi.set_num_threads(None)
    np.testing.assert_array_equal(view, want)
