"""The examples in the docstrings of every public name run as doctests."""

import doctest

import pytest

from cdropout import _runtime, functional, layers, reference, rescale


@pytest.mark.parametrize("module", [functional, layers, rescale, reference, _runtime])
def test_docstring_examples_run(module):
    failed, attempted = doctest.testmod(module)
    assert attempted > 0 and failed == 0, module.__name__


def test_docstring_examples_of_cdropout_torch_run():
    pytest.importorskip("torch")
    pytest.importorskip("ml_dtypes")
    from cdropout.torch import convert, functional, modules

    for module in (functional, modules, convert):
        failed, attempted = doctest.testmod(module)
        assert attempted > 0 and failed == 0, module.__name__


def test_readme_python_examples_run():
    # every ```python block of the README, in order, in one namespace
    import importlib.util
    import pathlib
    import re
    import textwrap

    readme = pathlib.Path(__file__).parent.parent / "README.md"
    blocks = re.findall(r"```python\n(.*?)```", readme.read_text(), re.S)
    blocks = [textwrap.dedent(block) for block in blocks]  # (in list items)
    assert len(blocks) >= 3
    namespace = {}
    has_dask = importlib.util.find_spec("dask") is not None
    has_torch = importlib.util.find_spec("torch") is not None
    for block in blocks:
        if "import dask" in block and not has_dask:
            continue  # the dask extra is not installed (.ci/run runs it with it)
        if "import torch" in block and not has_torch:
            continue  # likewise the torch extra
        exec(compile(block, str(readme), "exec"), namespace)


def test_assert_same_bytes_tells_apart_what_array_equal_does_not():
    import numpy as np

    from cdropout.testing import assert_same_bytes

    assert_same_bytes(np.array([0.0, np.nan]), np.array([0.0, np.nan]))
    for a, b in ((np.array([0.0]), np.array([-0.0])),
                 (np.array([1.0], np.float32), np.array([1.0])),
                 (np.ones((2, 1)), np.ones(2)),
                 (np.array([np.nan]), -np.array([np.nan]))):  # fmt: skip
        with pytest.raises(AssertionError):
            assert_same_bytes(a, b)
