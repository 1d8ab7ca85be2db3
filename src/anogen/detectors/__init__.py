"""One file per method; importing this package registers them all."""

from anogen.detectors import ae  # noqa: F401
