"""Writers of the output directory: per-image files (``image``), then the top-level indexes
(``layout``), and the reproducible tar of it all (``tarball``).

One directory serves every consumer: ``manifest.json`` + ``repositories`` + legacy
``<id>/{VERSION,json,layer.tar}`` (docker load, old daemons) and an OCI image layout
(``oci-layout``, ``index.json``, ``blobs/sha256/``: skopeo, podman, containerd, docker ≥ 25).
The submodules are imported where they are used: a run with nothing to write needs none.
"""

#: The top-level files every output directory has.
TOP_FILES = ("manifest.json", "repositories", "index.json", "oci-layout")
