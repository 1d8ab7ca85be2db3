"""One file per method; importing this package registers them all."""

from anogen.detectors import ae  # noqa: F401
from anogen.detectors import algan  # noqa: F401
