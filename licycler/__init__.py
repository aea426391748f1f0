"""licycler: a hardware-in-the-loop cycler controller for lithium-metal anode research."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("licycler")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
