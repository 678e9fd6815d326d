"""The README's examples run as written."""

import pathlib
import re
import textwrap
import warnings

import pytest


def test_readme_examples_run():
    pytest.importorskip("torch")
    pytest.importorskip("ml_dtypes")
    pytest.importorskip("transformers")
    text = (pathlib.Path(__file__).parent.parent / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 2
    # The distributed examples need a cluster or a process group: they are run by
    # tests/test_dask.py and tests/test_torch_distributed.py instead.
    for block in (b for b in blocks if "dask" not in b and "dist.get_rank" not in b):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)      # torch's own, about Transformer
            exec(compile(textwrap.dedent(block), "README.md", "exec"), {})
