"""Exceptions raised by frozen-tasks.

Every message is meant for a person: it says what failed, on which image and registry,
and what to do next.
"""


class FrozenError(Exception):
    """Base class of every error frozen-tasks raises on purpose."""


class SpecError(FrozenError):
    """images.json (or a command-line reference) is invalid; raised before any network request."""


class InvalidReferenceError(SpecError):
    """An image reference string cannot be parsed."""


class RegistryError(FrozenError):
    """The registry answered with an error, or could not be reached."""


class AuthError(RegistryError):
    """The registry refused the credentials (or lack of them)."""


class DigestMismatchError(FrozenError):
    """Content did not hash to the digest (or size) it was addressed by."""


class ManifestError(FrozenError):
    """A manifest is malformed, of an unknown media type, or has no matching platform."""
