"""Writers of the output directory: per-image files, then the top-level indexes.

One directory serves every consumer: ``manifest.json`` + ``repositories`` + legacy
``<id>/{VERSION,json,layer.tar}`` (docker load, old daemons) and an OCI image layout
(``oci-layout``, ``index.json``, ``blobs/sha256/``: skopeo, podman, containerd, docker ≥ 25).
"""

from .image import assemble_image
from .layout import write_output

__all__ = ["assemble_image", "write_output"]
