"""The optional parts of cdropout need their extra installed: one check for all."""

import importlib


def require(extra, what, *modules):
    """Import `modules`, or raise ImportError naming the extra that installs them:
    cdropout.<extra> needs `what` (the message's words)."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise ImportError(
                f"cdropout.{extra} needs {what} ({error}): install the {extra} extra, "
                f'pip install "cdropout[{extra}]"'
            ) from error
