"""fastinit.dask on a real dask.distributed cluster: chunks equal the in-memory fill."""

import warnings

import numpy as np
import pytest

dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")

import fastinit as fi  # noqa: E402
import fastinit.dask as fd  # noqa: E402

CASES = [
    ("kaiming_normal", "kaiming_normal_", dict(mode="fan_out", nonlinearity="relu")),
    ("kaiming_uniform", "kaiming_uniform_", dict(a=5 ** 0.5)),
    ("xavier_uniform", "xavier_uniform_", {}),
    ("trunc_normal", "trunc_normal_", dict(std=0.02)),
    ("uniform", "uniform_", dict(a=-1.0, b=2.0)),
    ("variance_scaling", "variance_scaling_", dict(scale=2.0, mode="fan_avg")),
    ("sparse", "sparse_", dict(sparsity=0.3)),
    ("orthogonal", "orthogonal_", {}),
]
SHAPE = (1000, 777)
CHUNKS = ((300, 1, 499, 200), (100, 677))        # irregular


def in_memory(name, kwargs, seed, dtype="float32"):
    return getattr(fi, name)(fi.empty(SHAPE, dtype), generator=fi.Generator(seed), **kwargs)


@pytest.fixture(scope="module")
def clients():
    """Two clusters of worker processes: one worker, and two."""
    one = distributed.Client(distributed.LocalCluster(n_workers=1, threads_per_worker=1,
                                                      processes=True, dashboard_address=":0"))
    two = distributed.Client(distributed.LocalCluster(n_workers=2, threads_per_worker=1,
                                                      processes=True, dashboard_address=":0"))
    yield one, two
    for c in (one, two):
        c.cluster.close()
        c.close()


@pytest.mark.parametrize("lazy, name, kwargs", CASES, ids=[c[0] for c in CASES])
def test_cluster_results_equal_the_in_memory_fill(lazy, name, kwargs, clients):
    expected = in_memory(name, kwargs, 21)
    results = []
    for client in clients:
        g = fi.Generator(21)
        x = getattr(fd, lazy)(SHAPE, chunks=CHUNKS, generator=g, **kwargs)
        assert g.state["counter"] == 1               # one call, like the in-place function
        results.append(client.compute(x).result())
    for r in results:
        np.testing.assert_array_equal(r, expected)


def test_dtypes_rechunking_and_default_chunks():
    g = fi.Generator(4)
    x = fd.normal((600, 500), chunks=(128, 128), dtype="float16", generator=g, std=0.5)
    np.testing.assert_array_equal(x.compute(), in_memory_shape((600, 500), "normal_",
                                                               dict(std=0.5), 4, "float16"))
    y = fd.uniform((3000,), generator=fi.Generator(5))
    np.testing.assert_array_equal(y.rechunk(700).compute(),
                                  fi.uniform_(np.empty(3000, np.float32), generator=fi.Generator(5)))


def in_memory_shape(shape, name, kwargs, seed, dtype):
    return getattr(fi, name)(fi.empty(shape, dtype), generator=fi.Generator(seed), **kwargs)


def test_bad_arguments_raise_at_construction_without_a_call():
    g = fi.Generator(0)
    with pytest.raises(ValueError, match="Mode"):
        fd.kaiming_normal((10, 10), generator=g, mode="fan_sum")
    with pytest.raises(ValueError, match="2 or more"):
        fd.orthogonal((10,), generator=g)
    with pytest.raises(TypeError):
        fd.orthogonal((10, 10), generator=g, gain=1j)
    with pytest.raises(TypeError):
        fd.orthogonal((10, 10), generator=g, gian=2.0)
    with pytest.raises(RuntimeError):
        fd.uniform((10,), generator=g, a=1.0, b=0.0)
    for shape in [(2.5, 3), "ab", None, (True, 3)]:     # (a float dimension was truncated)
        with pytest.raises(TypeError, match="shape must be an int or a sequence of ints"):
            fd.normal(shape, generator=g)
    assert g.state["counter"] == 0


@pytest.mark.parametrize("shape", [(0, 3), (3, 0), (0,), 4, ()])
@pytest.mark.parametrize("name, kwargs", [("normal", {}), ("kaiming_uniform", {}),
                                          ("sparse", {"sparsity": 0.5}), ("orthogonal", {})])
def test_shapes_as_numpy_takes_them_empty_ones_included(shape, name, kwargs):
    # An int shape, and arrays without elements (whose one-element stand-in did not fit
    # in them: ValueError), as the in-memory fill of fi.empty(shape): same values, warnings
    # and errors, and one call.
    g, h = fi.Generator(3), fi.Generator(3)
    try:
        with warnings.catch_warnings(record=True) as theirs:
            warnings.simplefilter("always")
            want = getattr(fi, name + "_")(fi.empty(shape, "float32"), generator=h, **kwargs)
    except ValueError as e:
        with pytest.raises(ValueError, match=str(e)):
            getattr(fd, name)(shape, generator=g, **kwargs)
        assert g.state["counter"] == 0
        return
    with warnings.catch_warnings(record=True) as ours:
        warnings.simplefilter("always")
        got = getattr(fd, name)(shape, generator=g, **kwargs)
    assert [str(w.message) for w in ours] == [str(w.message) for w in theirs]
    np.testing.assert_array_equal(got.compute(), want)
    assert got.shape == want.shape and g.state == h.state


def test_to_zarr_round_trip(tmp_path, clients):
    zarr = pytest.importorskip("zarr")
    x = fd.kaiming_uniform(SHAPE, chunks=(256, 256), generator=fi.Generator(8), a=5 ** 0.5)
    path = str(tmp_path / "w.zarr")
    clients[1].compute(x.to_zarr(path, compute=False)).result()
    np.testing.assert_array_equal(zarr.open(path, mode="r")[...],
                                  in_memory("kaiming_uniform_", dict(a=5 ** 0.5), 8))


def test_orthogonal_factors_the_matrix_once():
    x = fd.orthogonal((96, 64), chunks=(16, 16), generator=fi.Generator(6), gain=2.0)
    graph = dict(x.__dask_graph__())
    qr_tasks = [k for k, task in graph.items() if "_fill_chunk" in repr(task)]
    assert len(qr_tasks) == 1 and len(graph) == 1 + 6 * 4
    np.testing.assert_array_equal(
        x.compute(scheduler="synchronous"),
        fi.orthogonal_(np.empty((96, 64), np.float32), 2.0, fi.Generator(6)))
