"""Errors raised by cairn.core that a caller can act on."""

from __future__ import annotations

__all__ = [
    "FileChangedError",
    "FingerprintError",
    "GpuUnavailableError",
    "SpecialFileError",
    "UnsupportedTypeError",
]


class FingerprintError(Exception):
    """A fingerprint could not be taken."""


class SpecialFileError(FingerprintError):
    """A tree holds a fifo, socket or device, which has no content to fingerprint."""

    def __init__(self, path: str, kind: str) -> None:
        super().__init__(
            f"{path!r} is a {kind}; a dataset fingerprint covers regular files and symlinks only: "
            "remove it from the tree, or pass on_special='skip' to leave such files out"
        )
        self.path = path
        self.kind = kind


class FileChangedError(FingerprintError):
    """A file changed size while it was being fingerprinted."""

    def __init__(self, path: str, expected: int, hashed: int) -> None:
        super().__init__(
            f"{path!r} changed while it was fingerprinted ({expected} bytes at stat, {hashed} "
            "hashed); fingerprint it again once nothing is writing to it"
        )
        self.path = path


class UnsupportedTypeError(FingerprintError, TypeError):
    """An Arrow column has a type the table fingerprint does not define an encoding for."""


class GpuUnavailableError(RuntimeError):
    """No CUDA GPU is usable in this process (no CUDA in the build, no driver, or no device)."""
