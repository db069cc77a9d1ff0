"""The wire: talking to OCI / Docker registries. Nothing here knows about doit or outputs."""

from ..manifest import Fetched
from .client import MirroredClient, RegistryClient, RegistryPool

__all__ = ["Fetched", "MirroredClient", "RegistryClient", "RegistryPool"]
