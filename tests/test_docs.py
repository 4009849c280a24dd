"""The examples in the docstrings of every public name run as doctests."""

import doctest
import importlib.util
import pathlib
import re
import subprocess
import sys
import textwrap

import pytest

from cdropout import _runtime, functional, layers, reference, rescale


@pytest.mark.parametrize("module", [functional, layers, rescale, reference, _runtime])
def test_docstring_examples_run(module):
    failed, attempted = doctest.testmod(module)
    assert attempted > 0 and failed == 0, module.__name__


def test_docstring_examples_of_cdropout_torch_run():
    pytest.importorskip("torch")
    pytest.importorskip("ml_dtypes")
    from cdropout.torch import convert, functional, interception, modules

    for module in (functional, modules, convert, interception):
        failed, attempted = doctest.testmod(module)
        assert attempted > 0 and failed == 0, module.__name__


ROOT = pathlib.Path(__file__).resolve().parent.parent
EXTRAS = ("dask", "torch", "jax", "flax", "transformers")  # (transformers: a client)


def _python_blocks(path):
    blocks = re.findall(r"```python\n(.*?)```", path.read_text(), re.S)
    return [textwrap.dedent(block) for block in blocks]  # (in list items)


def _missing_extra(block):
    """The extra a block imports that is not installed here (.ci/run installs them)."""
    for module in EXTRAS:
        if re.search(rf"^\s*(import|from) {module}\b", block, re.M) or (
            f"import cdropout.{module}" in block
        ):
            if importlib.util.find_spec(module) is None:
                return module
    return None


@pytest.mark.skipif(not (ROOT / "README.md").exists(), reason="needs the source tree")
def test_each_readme_python_example_runs_alone_in_a_fresh_process(tmp_path):
    # a reader pastes one block into a new interpreter: its own imports, no files of
    # the others, no fixed paths (cwd: an empty folder)
    blocks = _python_blocks(ROOT / "README.md")
    assert len(blocks) >= 5
    for block in blocks:
        if _missing_extra(block):
            continue
        done = subprocess.run([sys.executable, "-c", block], cwd=tmp_path,
                              capture_output=True, text=True, timeout=600)  # fmt: skip
        assert done.returncode == 0, f"{block}\n{done.stderr}"


GUIDES = sorted((ROOT / "docs").glob("**/*.md"))


@pytest.mark.parametrize("page", GUIDES, ids=lambda path: path.name)
def test_the_python_examples_of_each_docs_page_run(page):
    # a page's blocks in order, in one namespace, as a reader of the page runs them
    namespace = {}
    for block in _python_blocks(page):
        if _missing_extra(block):
            return  # the rest of the page builds on it
        exec(compile(block, str(page), "exec"), namespace)


def _bash_blocks(text):
    return re.findall(r"```bash\n(.*?)```", text, re.S)


@pytest.mark.skipif(not (ROOT / "docs" / "install.md").exists(),
                    reason="needs the source tree")  # fmt: skip
def test_the_install_page_gives_the_readmes_commands():
    readme = (ROOT / "README.md").read_text()
    start, end = readme.index("## Install"), readme.index("## NumPy")
    page = (ROOT / "docs" / "install.md").read_text()
    assert _bash_blocks(page) == _bash_blocks(readme[start:end])
    assert len(_bash_blocks(page)) >= 4  # the extras, PyTorch's CPU build, Quick start


def test_the_readme_is_a_front_page():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 400
    assert "SPEED_TABLE" not in lines


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


@pytest.mark.skipif(not (ROOT / "CITATION.cff").exists(),
                    reason="needs the source tree")  # fmt: skip
def test_the_citation_dates_only_a_release():
    text = (ROOT / "CITATION.cff").read_text()
    version = re.search(r"^version: (\S+)", text, re.M).group(1)
    import cdropout

    assert version == cdropout.__version__
    assert ("date-released" in text) == (".dev" not in version)
