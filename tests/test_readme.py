"""The README's example runs as written."""

import pathlib
import re

import pytest


def test_readme_example_runs():
    pytest.importorskip("torch")
    pytest.importorskip("ml_dtypes")
    text = (pathlib.Path(__file__).parent.parent / "README.md").read_text()
    example = re.search(r"## Example\n\n```python\n(.*?)```", text, re.S).group(1)
    exec(compile(example, "README.md", "exec"), {})
