"""Model directories and ``model.tar.gz`` files in the SageMaker inference-toolkit layout.

What SageMaker's framework containers load, and so what a catalog entry's ``model.model_data``
names: the model's artefacts at the root, ``code/inference.py`` (or the entry point the entry
names, as ``SAGEMAKER_PROGRAM`` does) and an optional ``code/requirements.txt``. A container
unpacks ``model.tar.gz`` into ``/opt/ml/model``; this module checks a directory or an archive
before anything is registered, so that a wrong path or a missing script is refused by
``services apply`` with a message naming it, packs a directory as the ``model.tar.gz`` an
endpoint stack deploys, and unpacks archives for the local runtime.
"""

from __future__ import annotations

import gzip
import hashlib
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .domain.errors import CatalogValidationError
from .domain.models import ModelTarget

__all__ = [
    "DEFAULT_ARTEFACTS",
    "PackagedModel",
    "check_model_data",
    "is_s3_uri",
    "model_data_fingerprint",
    "package_model",
    "resolve_model_data",
    "unpack_model_archive",
]

#: The artefact each framework container loads when ``code/`` has no ``model_fn`` (none for
#: scikit-learn and custom containers: they need ``inference.py``).
DEFAULT_ARTEFACTS: dict[str, tuple[str, ...]] = {
    "xgboost": ("xgboost-model",),
    "pytorch": ("model.pt", "model.pth"),
    "huggingface": ("config.json",),
}


def is_s3_uri(value: str) -> bool:
    """True for ``s3://bucket/key`` (the only remote form ``model_data`` takes)."""
    return value.startswith("s3://")


def resolve_model_data(value: str, catalog_dir: Path) -> str:
    """``value`` as an absolute path (relative to the catalog file's directory) or as given for S3."""
    if is_s3_uri(value):
        return value
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = catalog_dir / path
    return str(path.resolve())


def _is_archive(path: Path) -> bool:
    return path.name.endswith((".tar.gz", ".tgz"))


def _archive_members(path: Path) -> list[str]:
    try:
        with tarfile.open(path, "r:gz") as archive:
            names = archive.getnames()
    except (OSError, tarfile.TarError, EOFError) as error:
        raise CatalogValidationError(f"{path} is not a readable .tar.gz archive: {error}") from None
    members = []
    for name in names:
        clean = PurePosixPath(name)
        if clean.is_absolute() or ".." in clean.parts:
            raise CatalogValidationError(f"{path}: member '{name}' would be unpacked outside the model directory")
        parts = [part for part in clean.parts if part != "."]
        if parts:
            members.append("/".join(parts))
    return members


def check_model_data(service: str, model: ModelTarget) -> None:
    """Refuse, with a message naming the path, a ``model_data`` the framework container cannot load.

    ``s3://`` URIs are not read here (they are checked when the endpoint is created).

    Raises
    ------
    CatalogValidationError
        The path does not exist, is neither a directory nor a ``.tar.gz``, or holds no
        ``code/<entry_point>`` and no artefact the framework's default ``model_fn`` loads.
    """
    if model.model_data is None or is_s3_uri(model.model_data):
        return
    where = f"service '{service}': model.model_data"
    path = Path(model.model_data)
    if not path.exists():
        raise CatalogValidationError(f"{where}: {path} does not exist")
    if path.is_dir():
        members = [str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()]
    elif path.is_file() and _is_archive(path):
        try:
            members = _archive_members(path)
        except CatalogValidationError as error:
            raise CatalogValidationError(f"{where}: {error.message}") from None
    else:
        raise CatalogValidationError(f"{where}: {path} is neither a directory nor a model.tar.gz")
    entry_point = model.entry_point if model.entry_point.endswith(".py") else f"{model.entry_point}.py"
    if f"code/{entry_point}" in members:
        return
    defaults = DEFAULT_ARTEFACTS.get(model.framework, ())
    if any(artefact in members for artefact in defaults):
        return
    if model.framework == "custom" and model.image:
        return  # the user's own image decides what it loads
    needs = f"code/{entry_point}"
    if defaults:
        needs += f" (or {' or '.join(defaults)}, which the {model.framework} container loads without one)"
    raise CatalogValidationError(
        f"{where}: {path} has no {needs}; framework '{model.framework}' cannot serve it without one"
    )


def model_data_fingerprint(path: Path) -> str:
    """A short digest of a model directory's or archive's files (names, sizes, modification times).

    It names the SageMaker model created for one ``services apply``: an edited ``inference.py``
    gives a new model even when the catalog entry is the same.
    """
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        stat = file.stat()
        digest.update(
            f"{file.relative_to(path) if file != path else file.name}:{stat.st_size}:{stat.st_mtime_ns}\n".encode()
        )
    return digest.hexdigest()[:12]


@dataclass(frozen=True)
class PackagedModel:
    """A ``model.tar.gz`` ready to upload, and the digest of its bytes (part of its S3 key)."""

    archive: Path
    digest: str


# What a model directory holds that the model is not: Python's caches (the local runtime's
# imports write them) and editors' and the OS's litter.
_NOT_PACKAGED = ("__pycache__", ".DS_Store", ".ipynb_checkpoints", ".git")


def package_model(source: Path, workdir: Path) -> PackagedModel:
    """``model.tar.gz`` of a model directory in the SageMaker layout, or an existing archive as it is.

    A directory is packed as a container unpacks it into ``/opt/ml/model``: its files at the
    archive's root (``code/inference.py`` stays ``code/inference.py``). The archive is
    reproducible (sorted members, no timestamps or owners), so the same files give the same
    digest and re-deploying an unchanged model changes nothing.

    Raises
    ------
    CatalogValidationError
        ``source`` is neither a directory nor a ``.tar.gz``.
    """
    if source.is_file() and _is_archive(source):
        return PackagedModel(source, _file_digest(source))
    if not source.is_dir():
        raise CatalogValidationError(f"{source} is neither a model directory nor a model.tar.gz")
    workdir.mkdir(parents=True, exist_ok=True)
    archive = workdir / "model.tar.gz"
    files = sorted(
        path
        for path in source.rglob("*")
        if path.is_file()
        and not any(part in _NOT_PACKAGED for part in path.relative_to(source).parts)
        and path.suffix != ".pyc"
    )
    with (
        archive.open("wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as compressed,
        tarfile.open(fileobj=compressed, mode="w") as tar,
    ):
        for path in files:
            info = tar.gettarinfo(str(path), arcname=path.relative_to(source).as_posix())
            if info.issym() or info.islnk():
                # A link may point outside the directory: pack what it points to.
                info = tar.gettarinfo(str(path.resolve()), arcname=info.name)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with path.open("rb") as handle:
                tar.addfile(info, handle)
    return PackagedModel(archive, _file_digest(archive))


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def unpack_model_archive(archive: Path, destination: Path) -> Path:
    """Unpack ``model.tar.gz`` into ``destination`` as a container unpacks it into /opt/ml/model.

    Raises
    ------
    CatalogValidationError
        The archive is unreadable or a member would land outside ``destination``.
    """
    _archive_members(archive)  # refuses absolute paths and '..' before anything is written
    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:gz") as opened:
        if hasattr(tarfile, "data_filter"):
            # The "data" filter also refuses links out of the directory and device files.
            opened.extractall(destination, filter="data")
        else:  # Python 3.11 before 3.11.4: members were checked above
            opened.extractall(destination)
    return destination
