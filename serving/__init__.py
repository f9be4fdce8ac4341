"""SFAI serving."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sfai")  # pyproject.toml's: the release, shown by `sfai --version` and the OpenAPI info
except PackageNotFoundError:  # run from a checkout that was never installed
    __version__ = "0+unknown"
