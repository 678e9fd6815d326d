"""The README's examples run as written."""

import pathlib
import re
import warnings

import pytest


def test_readme_examples_run():
    pytest.importorskip("torch")
    pytest.importorskip("ml_dtypes")
    text = (pathlib.Path(__file__).parent.parent / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 2
    for block in blocks:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)      # torch's own, about Transformer
            exec(compile(block, "README.md", "exec"), {})
