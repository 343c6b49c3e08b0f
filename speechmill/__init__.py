"""speechmill: speech training corpora at scale, as Apache Beam pipelines."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("speechmill")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+unknown"
