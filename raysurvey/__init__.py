"""raysurvey: Ray-distributed, survey-scale classification of astronomical spectra."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("raysurvey")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
