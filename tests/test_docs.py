"""The examples in the docstrings of every public name run as doctests."""

import doctest

import pytest

from cdropout import _config, functional, layers, rescale


@pytest.mark.parametrize("module", [functional, layers, rescale, _config])
def test_docstring_examples_run(module):
    failed, attempted = doctest.testmod(module)
    assert attempted > 0 and failed == 0, module.__name__
