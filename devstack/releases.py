"""The code a published function version runs locally, kept apart from the checkout.

In AWS a function version is immutable: its deployment package and its layers are fixed when it
is published, so an execution started on one release calls the code of that release to its end.
Locally the invoker runs Python from folders, so every package the wiring uploads is also
unpacked into the state folder, named by its content (`<state dir>/releases/<sha256>/`):

    function/   the function's folder (`functions/<service>/*.py`), as /var/task in Lambda
    python/     the shared layer (`layers/common/python`), as /opt/python in Lambda

The package is built deterministically (sorted entries, fixed timestamps), so unchanged code
makes the same package and the same SHA-256: moto's `CodeSha256` of the function tells the
wiring whether the code changed (a new version) and tells the invoker which folder a version
runs (devstack/invoker.py). A folder is written once, before the package is uploaded, and never
changed. The layer's third-party dependencies are not in the package: they are pinned
(constraints.txt) and the workers import them from the virtualenv, as they would from the
dependencies layer. `$LATEST` (the SQS-fed notifier, the watchdog's rule) keeps running the
checkout itself.
"""

import base64
import hashlib
import io
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from order_saga.functions import FunctionSpec

from .paths import REPO_ROOT, STATE_DIR

RELEASES_DIR = STATE_DIR / "releases"
LAYER_DIR = Path("layers/common/python")  # in a source tree: what the shared layer carries
TASK = "function"  # the package's folder of the function's own code
LAYER = "python"  # the package's folder of the layer's code
FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest a zip entry can carry: no build time in the hash


class ReleaseSourceError(Exception):
    """The source tree lacks what a release is built from."""


@dataclass(frozen=True)
class Package:
    """A function's deployment package: its own code and the layer's."""

    archive: bytes

    @property
    def sha256(self) -> str:
        """As Lambda reports it (CodeSha256: base64 of the digest)."""
        return base64.b64encode(hashlib.sha256(self.archive).digest()).decode()

    @property
    def folder(self) -> Path:
        return code_folder(self.sha256)


def code_folder(code_sha256: str) -> Path:
    """Where the package with this CodeSha256 is unpacked."""
    return RELEASES_DIR / base64.b64decode(code_sha256).hex()


def import_paths(code_sha256: str) -> tuple[Path, Path]:
    """(the function's folder, the layer's folder) of a published version's code."""
    folder = code_folder(code_sha256)
    return folder / TASK, folder / LAYER


def _files(folder: Path, pattern: str) -> list[Path]:
    return sorted(
        path for path in folder.rglob(pattern) if path.is_file() and "__pycache__" not in path.parts
    )


def package(spec: FunctionSpec, source: Path = REPO_ROOT) -> Package:
    """The package of `spec` from the source tree `source` (a checkout, or a copy of one)."""
    function_dir, layer_dir = source / spec.code_dir, source / LAYER_DIR
    for needed in (function_dir, layer_dir):
        if not needed.is_dir():
            raise ReleaseSourceError(f"{needed} is not a folder: {source} is not a source tree of the saga")
    entries = [(f"{TASK}/{p.relative_to(function_dir)}", p) for p in _files(function_dir, "*.py")]
    entries += [(f"{LAYER}/{p.relative_to(layer_dir)}", p) for p in _files(layer_dir, "*")]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, path in entries:
            entry = zipfile.ZipInfo(name, FIXED_TIME)
            entry.external_attr = 0o644 << 16
            archive.writestr(entry, path.read_bytes(), zipfile.ZIP_DEFLATED)
    return Package(buffer.getvalue())


def unpack(code: Package) -> Path:
    """The package's folder, written once (atomically: a half-written folder is never seen)."""
    folder = code.folder
    if folder.is_dir():
        return folder
    RELEASES_DIR.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=".unpacking-", dir=RELEASES_DIR))
    with zipfile.ZipFile(io.BytesIO(code.archive)) as archive:
        archive.extractall(partial)
    try:
        partial.rename(folder)
    except OSError:  # written meanwhile by another wiring of the same code
        shutil.rmtree(partial)
    return folder
