"""cdropout's version, in a module of its own: the package, the build (setuptools'
dynamic version) and show_config() read it."""

__version__ = "0.3.0.dev0"
