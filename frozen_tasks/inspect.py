"""Read an output directory (or a plain tar of one) back: list its images, verify it end to end.

``inspect_output(path)`` lists the images of the OCI layout (``index.json``): tags, platform,
manifest and config digests, layer count and compressed size. ``verify_output(path)`` checks
what ``docker load``, skopeo and containerd rely on, and returns every problem found:

- every ``blobs/sha256/<hex>`` hashes to its name, and has the size its descriptors give;
- every ``manifest.json`` Config / Layers path exists; each config's ``rootfs.diff_ids`` count
  equals the image's layer count;
- every ``index.json`` manifest resolves to blobs that exist (manifest, config, layers);
- ``manifest.json`` and ``index.json`` describe the same tags, with the same config and layers;
- ``repositories`` tags point at existing legacy directories (the image's top layer);
- every legacy ``<id>/layer.tar`` is identical to its layer blob.

A tar is read in place with :mod:`tarfile` (member headers, then each member streamed from
its offset), never extracted; blobs are hashed in chunks, so memory does not grow with layer
size. Hard links (``tar -cC out .`` stores the second name of an inode as one) are followed.
"""

from __future__ import annotations

import json
import os
import stat
import tarfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from .errors import FrozenError
from .output import TOP_FILES
from .output.image import legacy_layer_ids
from .reference import DIGEST, parse_reference
from .store import sha256_stream

HASH_CHUNK = 1 << 20  # bytes hashed at a time: verify holds one chunk per blob
MAX_JSON = 32 << 20  # larger "JSON" files (manifests, configs, indexes) are refused unread
REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"
MANIFEST_TYPES = frozenset(
    {
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    }
)
_HEX64 = frozenset("0123456789abcdef")


class InspectError(FrozenError):
    """PATH cannot be read as an output directory or a tar of one."""


def _is_hex64(name: str) -> bool:
    return len(name) == 64 and set(name) <= _HEX64


def _blob_rel(digest: str) -> str | None:
    """``blobs/sha256/<hex>`` for a well-formed ``sha256:<hex>`` digest, else None."""
    if isinstance(digest, str) and DIGEST.fullmatch(digest):
        return f"blobs/sha256/{digest[7:]}"
    return None


def _rel_digest(rel: str) -> str | None:
    """The ``sha256:<hex>`` a ``blobs/sha256/<hex>`` path names, else None."""
    head, _, name = rel.rpartition("/")
    return f"sha256:{name}" if head == "blobs/sha256" and _is_hex64(name) else None


# --- sources: a directory or a tar, read the same way ---------------------------------------


class Source:
    """The regular files of an output, by path relative to its root (``blobs/sha256/<hex>``)."""

    path: Path
    kind: str  # "directory" or "tar"
    files: dict[str, int]  # relative path → size in bytes

    def open(self, rel: str) -> IO[bytes]:
        """A binary stream of the file's content (read it in chunks)."""
        raise NotImplementedError

    def identity(self, rel: str) -> Any:
        """A key equal for two names of the same stored content (hard links), else distinct."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the open tar, if any."""

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def where(self, rel: str) -> str:
        """How messages name a file: ``out/blobs/sha256/…`` or ``out.tar:blobs/sha256/…``."""
        return str(self.path / rel) if self.kind == "directory" else f"{self.path}:{rel}"

    def is_dir(self, rel: str) -> bool:
        """Whether any file lies below ``rel/``."""
        prefix = rel.rstrip("/") + "/"
        return any(name.startswith(prefix) for name in self.files)


class DirSource(Source):
    """An output directory; dotfiles (temporary files, bookkeeping) are left out, as in a tar."""

    def __init__(self, path: Path) -> None:
        self.path, self.kind = path, "directory"
        self.files = {}
        for root, dirs, names in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(names):
                if name.startswith("."):
                    continue
                full = os.path.join(root, name)
                try:
                    st = os.stat(full)
                except OSError:
                    continue  # a dangling symlink: reported as missing where it is needed
                if stat.S_ISREG(st.st_mode):
                    self.files[os.path.relpath(full, path).replace(os.sep, "/")] = st.st_size

    def open(self, rel: str) -> IO[bytes]:
        return open(self.path / rel, "rb")

    def identity(self, rel: str) -> Any:
        st = os.stat(self.path / rel)
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _norm_member(name: str) -> str:
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    return "/".join(parts)


class TarSource(Source):
    """A plain (uncompressed) tar of an output directory, as ``tar -cC out .`` writes it.

    Only the member headers are read up front; content is streamed from each member's offset.
    """

    def __init__(self, path: Path) -> None:
        self.path, self.kind = path, "tar"
        try:
            self._tar = tarfile.open(path, mode="r:")  # noqa: SIM115 (closed by close())
        except tarfile.ReadError as exc:
            raise InspectError(
                f"{path}: not a plain tar ({exc}); pack the output with `tar -cC DIR .`, "
                "without compression"
            ) from None
        try:
            members = self._tar.getmembers()
        except (tarfile.TarError, EOFError) as exc:
            self._tar.close()
            raise InspectError(f"{path}: truncated or damaged tar ({exc})") from None
        self._members: dict[str, tarfile.TarInfo] = {}
        for info in members:
            name = _norm_member(info.name)
            if name and not any(p.startswith(".") for p in name.split("/")):
                self._members[name] = info  # a later member of the same name wins, as in tar -x
        self.files = {}
        for name in self._members:
            target = self._resolve(name)
            if target is not None:
                self.files[name] = target.size

    def _resolve(self, name: str) -> tarfile.TarInfo | None:
        """The member holding ``name``'s content, following hard and symbolic links."""
        info = self._members.get(name)
        for _ in range(32):
            if info is None:
                return None
            if info.isreg():
                return info
            if info.islnk():
                info = self._members.get(_norm_member(info.linkname))
            elif info.issym():
                base = name.rpartition("/")[0]
                link = info.linkname
                name = _norm_member(link if link.startswith("/") else f"{base}/{link}")
                info = self._members.get(name)
            else:
                return None
        return None

    def open(self, rel: str) -> IO[bytes]:
        info = self._resolve(rel)
        stream = self._tar.extractfile(info) if info is not None else None
        if stream is None:
            raise FileNotFoundError(rel)
        return stream

    def identity(self, rel: str) -> Any:
        info = self._resolve(rel)
        return info.offset_data if info is not None else rel

    def close(self) -> None:
        self._tar.close()


def open_source(path: str | os.PathLike[str]) -> Source:
    """A :class:`Source` for an output directory or a plain tar of one."""
    path = Path(path)
    try:
        if path.is_dir():
            return DirSource(path)
        if path.is_file():
            return TarSource(path)
    except PermissionError as exc:
        raise InspectError(f"{path}: permission denied ({exc.strerror})") from None
    if not path.exists():
        raise InspectError(f"{path}: no such file or directory")
    raise InspectError(f"{path}: neither a directory nor a tar file")


# --- reading --------------------------------------------------------------------------------


class _Unreadable(Exception):
    """A file is missing or is not the JSON it should be; the message says which."""


def _read_json(source: Source, rel: str) -> Any:
    if rel not in source.files:
        raise _Unreadable("missing")
    if source.files[rel] > MAX_JSON:
        raise _Unreadable(f"{source.files[rel]} bytes, too large to be JSON metadata")
    with source.open(rel) as f:
        data = f.read(source.files[rel])  # read(n) allocates n bytes at once
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _Unreadable(f"not valid JSON ({exc})") from None


def _platform(config: Any) -> str | None:
    if not isinstance(config, dict) or not config.get("os") or not config.get("architecture"):
        return None
    parts = [str(config["os"]), str(config["architecture"])]
    if config.get("variant"):
        parts.append(str(config["variant"]))
    return "/".join(parts)


def _descriptors(value: Any) -> list[dict[str, Any]]:
    return [d for d in value if isinstance(d, dict)] if isinstance(value, list) else []


@dataclass
class ImageInfo:
    """One image of the OCI layout (one manifest, with every tag index.json gives it)."""

    tags: list[str]
    names: list[str]  # io.containerd.image.name annotations
    platform: str | None
    manifest_digest: str | None
    config_digest: str | None
    layers: int | None
    compressed_size: int | None  # sum of the layers' sizes, in bytes

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def inspect_source(source: Source) -> tuple[list[ImageInfo], list[str]]:
    """(the images of ``source``'s index.json, warnings about what could not be read)."""
    warnings: list[str] = []
    try:
        index = _read_json(source, "index.json")
    except _Unreadable as exc:
        raise InspectError(
            f"{source.where('index.json')}: {exc}; is {source.path} an output of `doit frozen`?"
        ) from None
    images: dict[str, ImageInfo] = {}
    for n, entry in enumerate(
        _descriptors(index.get("manifests") if isinstance(index, dict) else None)
    ):
        digest = entry.get("digest")
        key = digest if isinstance(digest, str) else f"#{n}"
        annotations = entry.get("annotations") if isinstance(entry.get("annotations"), dict) else {}
        if key not in images:
            images[key] = _image_info(source, digest, warnings)
        image = images[key]
        if annotations.get(REF_NAME):
            image.tags.append(str(annotations[REF_NAME]))
        if annotations.get(CONTAINERD_NAME):
            image.names.append(str(annotations[CONTAINERD_NAME]))
    return list(images.values()), warnings


def _image_info(source: Source, digest: Any, warnings: list[str]) -> ImageInfo:
    info = ImageInfo([], [], None, digest if isinstance(digest, str) else None, None, None, None)
    rel = _blob_rel(digest)
    if rel is None:
        warnings.append(f"{source.where('index.json')}: malformed manifest digest {digest!r}")
        return info
    try:
        manifest = _read_json(source, rel)
    except _Unreadable as exc:
        warnings.append(f"{source.where(rel)}: manifest {exc}")
        return info
    if not isinstance(manifest, dict):
        warnings.append(f"{source.where(rel)}: manifest is not a JSON object")
        return info
    layers = _descriptors(manifest.get("layers"))
    info.layers = len(layers)
    sizes = [d.get("size") for d in layers]
    if all(isinstance(s, int) for s in sizes):
        info.compressed_size = sum(sizes)
    config = manifest.get("config") if isinstance(manifest.get("config"), dict) else {}
    info.config_digest = config.get("digest") if isinstance(config.get("digest"), str) else None
    config_rel = _blob_rel(info.config_digest or "")
    if config_rel is None:
        warnings.append(f"{source.where(rel)}: malformed config digest {info.config_digest!r}")
        return info
    try:
        info.platform = _platform(_read_json(source, config_rel))
    except _Unreadable as exc:
        warnings.append(f"{source.where(config_rel)}: config {exc}")
    return info


def inspect_output(path: str | os.PathLike[str]) -> tuple[list[ImageInfo], list[str]]:
    """List the images of an output directory or tar: ``(images, warnings)``."""
    with open_source(path) as source:
        return inspect_source(source)


def _short(digest: str | None, truncate: bool) -> str:
    if not digest:
        return "?"
    return digest[:19] if truncate and digest.startswith("sha256:") else digest


def human_size(size: int | None) -> str:
    """``1.2 MiB`` style."""
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_table(images: list[ImageInfo], truncate: bool = True) -> str:
    """A table, one row per image, tags comma-separated; digests cut to 12 hex unless asked."""
    head = ("TAGS", "PLATFORM", "MANIFEST", "CONFIG", "LAYERS", "SIZE")
    rows = [head] + [
        (
            ", ".join(image.tags) or "<untagged>",
            image.platform or "?",
            _short(image.manifest_digest, truncate),
            _short(image.config_digest, truncate),
            "?" if image.layers is None else str(image.layers),
            human_size(image.compressed_size),
        )
        for image in images
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    right = {4, 5}
    lines = [
        "  ".join(
            cell.rjust(w) if i in right else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
    return "\n".join(lines)


# --- verify ---------------------------------------------------------------------------------


@dataclass
class Problem:
    """One thing wrong with one file, and what to do about it."""

    file: str
    what: str
    fix: str

    def __str__(self) -> str:
        return f"{self.file}: {self.what}; {self.fix}"


@dataclass
class VerifyResult:
    """What :func:`verify_output` checked, and the problems it found (none: all good)."""

    path: Path
    images: int = 0
    blobs: int = 0
    blob_bytes: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        mib = self.blob_bytes / (1 << 20)
        return f"verified {self.images} images, {self.blobs} blobs, {mib:.1f} MiB ({self.path})"


class _Verifier:
    def __init__(self, source: Source) -> None:
        self.source = source
        self.result = VerifyResult(source.path)
        self._hashes: dict[Any, tuple[str, int]] = {}
        if source.kind == "directory":
            self.rerun = (
                "rebuild it from the cache: `doit clean frozen && doit frozen` "
                "(or delete the directory and re-run frozen-download)"
            )
            self.corrupt = (
                "it is a hard link into the cache: delete $FROZEN_CACHE/{rel} "
                "(default ~/.cache/frozen-tasks), then `doit clean frozen && doit frozen`"
            )
        else:
            self.rerun = (
                "rebuild the tar from a directory that verifies (`doit frozen`, then "
                "`frozen-tasks verify DIR` and `tar -cC DIR .`)"
            )
            self.corrupt = self.rerun

    # helpers

    def problem(self, rel: str, what: str, fix: str | None = None) -> None:
        self.result.problems.append(Problem(self.source.where(rel), what, fix or self.rerun))

    def digest_of(self, rel: str) -> tuple[str, int] | None:
        """(sha256 digest, size) of a file, hashed once per stored content; None if unreadable."""
        try:
            key = self.source.identity(rel)
            if key not in self._hashes:
                with self.source.open(rel) as stream:
                    self._hashes[key] = sha256_stream(stream, HASH_CHUNK)
            return self._hashes[key]
        except (OSError, tarfile.TarError, EOFError) as exc:
            self.problem(rel, f"cannot be read ({exc})")
            return None

    def read_json(self, rel: str, what: str, referrer: str | None = None) -> Any:
        try:
            return _read_json(self.source, rel)
        except _Unreadable as exc:
            by = f" (referenced by {referrer})" if referrer else ""
            self.problem(rel, f"{what}{by}: {exc}")
        except (OSError, tarfile.TarError, EOFError) as exc:
            self.problem(rel, f"{what} cannot be read ({exc})")
        return None

    def blob(self, descriptor: Any, referrer: str, what: str) -> str | None:
        """Check a descriptor's blob exists with its size; return its path, or None."""
        if not isinstance(descriptor, dict):
            self.problem(referrer, f"{what} descriptor is not a JSON object")
            return None
        digest, size = descriptor.get("digest"), descriptor.get("size")
        rel = _blob_rel(digest)
        if rel is None:
            self.problem(referrer, f"{what} has a malformed digest {digest!r}")
            return None
        if rel not in self.source.files:
            self.problem(rel, f"missing: the {what} of {referrer}")
            return None
        actual = self.source.files[rel]
        if isinstance(size, int) and size != actual:
            self.problem(
                rel,
                f"{actual} bytes, but {referrer} gives the {what} {size} bytes",
                self.corrupt.format(rel=rel),
            )
        elif not isinstance(size, int):
            self.problem(referrer, f"{what} {digest} has no valid size ({size!r})")
        return rel

    def diff_ids(self, config_rel: str, referrer: str) -> int | None:
        config = self.read_json(config_rel, "image config", referrer)
        if config is None:
            return None
        rootfs = config.get("rootfs") if isinstance(config, dict) else None
        ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
        if not isinstance(ids, list):
            self.problem(config_rel, "image config has no rootfs.diff_ids list")
            return None
        return len(ids)

    # checks

    def run(self) -> VerifyResult:
        for name in TOP_FILES:
            if name not in self.source.files:
                self.problem(name, "missing")
        self.check_blobs()
        self.check_layout()
        oci = self.check_index()
        docker = self.check_manifest_json()
        self.compare(docker, oci)
        self.check_repositories(docker)
        self.check_legacy(docker)
        return self.result

    def check_blobs(self) -> None:
        for rel, size in self.source.files.items():
            if not rel.startswith("blobs/"):
                continue
            digest = _rel_digest(rel)
            if digest is None:
                self.problem(
                    rel,
                    "not a blobs/sha256/<64 hex> name; nothing can address it",
                    f"delete it, or {self.rerun}",
                )
                continue
            self.result.blobs += 1
            self.result.blob_bytes += size
            got = self.digest_of(rel)
            if got is not None and got[0] != digest:
                self.problem(
                    rel,
                    f"content hashes to {got[0]}, not its name (corrupted)",
                    self.corrupt.format(rel=rel),
                )

    def check_layout(self) -> None:
        if "oci-layout" in self.source.files:
            layout = self.read_json("oci-layout", "oci-layout")
            if layout is not None and not (
                isinstance(layout, dict) and isinstance(layout.get("imageLayoutVersion"), str)
            ):
                self.problem("oci-layout", "has no imageLayoutVersion")

    def check_index(self) -> dict[str, tuple[str | None, list[str]]]:
        """index.json: tag → (config digest, layer digests); untagged ones keyed by their name."""
        images: dict[str, tuple[str | None, list[str]]] = {}
        if "index.json" not in self.source.files:
            return images
        index = self.read_json("index.json", "index.json")
        if index is None:
            return images
        entries = index.get("manifests") if isinstance(index, dict) else None
        if not isinstance(entries, list):
            self.problem("index.json", "has no manifests list")
            return images
        seen: dict[str, tuple[str | None, list[str]]] = {}
        for n, entry in enumerate(entries):
            where = f"index.json manifests[{n}]"
            rel = self.blob(entry, "index.json", f"manifest {where}")
            if rel is None:
                continue
            if entry.get("mediaType") not in MANIFEST_TYPES:
                self.problem(
                    "index.json",
                    f"{where} has media type {entry.get('mediaType')!r}, not an image manifest",
                )
            if rel not in seen:
                seen[rel] = self.check_oci_manifest(rel)
            annotations = entry.get("annotations")
            annotations = annotations if isinstance(annotations, dict) else {}
            tag = annotations.get(REF_NAME)
            name = annotations.get(CONTAINERD_NAME)
            if tag is not None:
                self.check_names("index.json", where, str(tag), name)
                if tag in images:
                    self.problem("index.json", f"tag {tag} is listed twice")
                images[str(tag)] = seen[rel]
            else:
                images[f"@{name or rel}"] = seen[rel]
        return images

    def check_names(self, rel: str, where: str, tag: str, name: Any) -> None:
        try:
            expected = str(parse_reference(tag))
        except FrozenError as exc:
            self.problem(rel, f"{where}: {REF_NAME} {tag!r} is not an image reference ({exc})")
            return
        if name != expected:
            self.problem(
                rel,
                f"{where}: {CONTAINERD_NAME} is {name!r}, but {REF_NAME} {tag} means {expected}",
            )

    def check_oci_manifest(self, rel: str) -> tuple[str | None, list[str]]:
        manifest = self.read_json(rel, "manifest", "index.json")
        if not isinstance(manifest, dict):
            if manifest is not None:
                self.problem(rel, "manifest is not a JSON object")
            return None, []
        config = manifest.get("config")
        config_rel = self.blob(config, rel, "config")
        layers = manifest.get("layers")
        if not isinstance(layers, list):
            self.problem(rel, "manifest has no layers list")
            layers = []
        for n, layer in enumerate(layers):
            self.blob(layer, rel, f"layer {n}")
        if config_rel is not None:
            count = self.diff_ids(config_rel, rel)
            if count is not None and count != len(layers):
                self.problem(
                    config_rel,
                    f"rootfs.diff_ids has {count} entries, but manifest "
                    f"{rel} has {len(layers)} layers",
                )
        config_digest = config.get("digest") if isinstance(config, dict) else None
        digests = [d.get("digest") for d in layers if isinstance(d, dict)]
        return config_digest, [str(d) for d in digests]

    def check_manifest_json(self) -> dict[str, tuple[str | None, list[str]]]:
        """manifest.json: tag → (config digest, layer digests); untagged ones as ``#n``."""
        images: dict[str, tuple[str | None, list[str]]] = {}
        if "manifest.json" not in self.source.files:
            return images
        entries = self.read_json("manifest.json", "manifest.json")
        if entries is None:
            return images
        if not isinstance(entries, list):
            self.problem("manifest.json", "is not a JSON list of images")
            return images
        self.result.images = len(entries)
        for n, entry in enumerate(entries):
            where = f"manifest.json[{n}]"
            if not isinstance(entry, dict):
                self.problem("manifest.json", f"{where} is not a JSON object")
                continue
            config, layers, tags = entry.get("Config"), entry.get("Layers"), entry.get("RepoTags")
            if not isinstance(layers, list) or not all(isinstance(p, str) for p in layers):
                self.problem("manifest.json", f"{where} has no Layers list of paths")
                layers = []
            for path in layers:
                if _norm_member(path) not in self.source.files:
                    self.problem(_norm_member(path), f"missing: a layer of {where}")
            config_digest = _rel_digest(_norm_member(config)) if isinstance(config, str) else None
            if not isinstance(config, str):
                self.problem("manifest.json", f"{where} has no Config path")
            elif _norm_member(config) not in self.source.files:
                self.problem(_norm_member(config), f"missing: the Config of {where}")
            else:
                count = self.diff_ids(_norm_member(config), where)
                if count is not None and count != len(layers):
                    self.problem(
                        _norm_member(config),
                        f"rootfs.diff_ids has {count} entries, but "
                        f"{where} has {len(layers)} Layers",
                    )
            digests = [_rel_digest(_norm_member(p)) or p for p in layers]
            if tags is None:
                tags = []
            if not isinstance(tags, list):
                self.problem("manifest.json", f"{where} RepoTags is not a list")
                tags = []
            for tag in tags:
                if tag in images:
                    self.problem("manifest.json", f"tag {tag} is given to two images")
                images[str(tag)] = (config_digest, digests)
            if not tags:
                images[f"#{n}"] = (config_digest, digests)
        return images

    def compare(
        self,
        docker: dict[str, tuple[str | None, list[str]]],
        oci: dict[str, tuple[str | None, list[str]]],
    ) -> None:
        if "manifest.json" not in self.source.files or "index.json" not in self.source.files:
            return
        for tag, (config, layers) in docker.items():
            if tag.startswith("#"):
                untagged = [v for k, v in oci.items() if k.startswith("@")]
                if (config, layers) not in untagged:
                    self.problem(
                        "manifest.json",
                        f"an untagged image (config {config}) has no "
                        "untagged manifest in index.json",
                    )
                continue
            if tag not in oci:
                self.problem(
                    "manifest.json",
                    f"tag {tag} is not in index.json (no manifest with {REF_NAME}={tag})",
                )
            elif oci[tag][0] != config:
                self.problem(
                    "manifest.json",
                    f"tag {tag} has config {config}, but index.json's "
                    f"manifest for it has config {oci[tag][0]}",
                )
            elif oci[tag][1] != layers:
                self.problem(
                    "manifest.json",
                    f"tag {tag} lists other layers than index.json's manifest for it",
                )
        for tag, (config, _) in oci.items():
            if tag.startswith("@"):
                if (config, oci[tag][1]) not in [v for k, v in docker.items() if k.startswith("#")]:
                    self.problem(
                        "index.json",
                        f"the untagged manifest {tag[1:]} has no untagged image in manifest.json",
                    )
            elif tag not in docker:
                self.problem(
                    "index.json", f"tag {tag} ({REF_NAME}) is not in manifest.json's RepoTags"
                )

    def check_repositories(self, docker: dict[str, tuple[str | None, list[str]]]) -> None:
        if "repositories" not in self.source.files:
            return
        repositories = self.read_json("repositories", "repositories")
        if repositories is None:
            return
        if not isinstance(repositories, dict):
            self.problem("repositories", "is not a JSON object of name → tag → layer id")
            return
        for name, tags in repositories.items():
            if not isinstance(tags, dict):
                self.problem("repositories", f"{name} is not an object of tag → layer id")
                continue
            for tag, layer_id in tags.items():
                full = f"{name}:{tag}"
                if not isinstance(layer_id, str) or not _is_hex64(layer_id):
                    self.problem("repositories", f"{full} points at {layer_id!r}, not a layer id")
                    continue
                if f"{layer_id}/layer.tar" not in self.source.files:
                    self.problem(
                        "repositories",
                        f"{full} points at {layer_id}, but {layer_id}/layer.tar does not exist",
                    )
                if full not in docker:
                    self.problem("repositories", f"{full} is not in manifest.json's RepoTags")
                else:
                    ids = legacy_layer_ids(docker[full][1])
                    if ids and ids[-1] != layer_id:
                        self.problem(
                            "repositories",
                            f"{full} points at {layer_id}, but its top layer is {ids[-1]}",
                        )

    def check_legacy(self, docker: dict[str, tuple[str | None, list[str]]]) -> None:
        checked: set[str] = set()
        for _, layers in docker.values():
            if not all(isinstance(d, str) and DIGEST.fullmatch(d) for d in layers):
                continue
            for layer_id, digest in zip(legacy_layer_ids(layers), layers, strict=True):
                if layer_id in checked:
                    continue
                checked.add(layer_id)
                for name in ("VERSION", "json"):
                    if f"{layer_id}/{name}" not in self.source.files:
                        self.problem(f"{layer_id}/{name}", f"missing: legacy file of {digest}")
                rel = f"{layer_id}/layer.tar"
                if rel not in self.source.files:
                    self.problem(rel, f"missing: the legacy copy of layer {digest}")
                    continue
                got = self.digest_of(rel)
                if got is not None and got[0] != digest:
                    self.problem(rel, f"differs from the blob {digest} (hashes to {got[0]})")


def verify_source(source: Source) -> VerifyResult:
    """Check everything in ``source`` (see the module docstring); problems are in the result."""
    return _Verifier(source).run()


def verify_output(path: str | os.PathLike[str]) -> VerifyResult:
    """Verify an output directory or a plain tar of one, end to end."""
    with open_source(path) as source:
        return verify_source(source)
