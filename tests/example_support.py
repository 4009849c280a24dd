"""The examples/ scripts as modules, for the tests that run their models."""

import importlib.util
import pathlib
import sys

import pytest


def example(name):
    """The module examples/<name>.py of the source tree, imported once as
    example_<name> (its classes pickle); skips where it is absent: the wheel's test
    run has the tests only."""
    module_name = f"example_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    path = pathlib.Path(__file__).parents[1] / "examples" / f"{name}.py"
    if not path.exists():
        pytest.skip(f"examples/{name}.py is not here (not a source tree)")
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[module_name] = module
    return module
