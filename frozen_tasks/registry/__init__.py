"""The wire: talking to OCI / Docker registries. Nothing here knows about doit or outputs."""

from .client import Fetched, RegistryClient, RegistryPool

__all__ = ["Fetched", "RegistryClient", "RegistryPool"]
