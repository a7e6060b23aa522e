"""The code packages of function versions (devstack/releases.py): deterministic, content-named,
unpacked once, from the checkout or from another source tree."""

import io
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from devstack import releases
from devstack.paths import REPO_ROOT
from order_saga.functions import function

STEP = function("ReserveStock")


@pytest.fixture(autouse=True)
def releases_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "releases"
    monkeypatch.setattr(releases, "RELEASES_DIR", folder)
    return folder


def source_copy(tmp_path: Path) -> Path:
    """A source tree of the saga's code: the function folders and the shared layer."""
    source = tmp_path / "source"
    for part in ("functions", str(releases.LAYER_DIR)):
        shutil.copytree(REPO_ROOT / part, source / part, ignore=shutil.ignore_patterns("__pycache__"))
    return source


def test_the_package_holds_the_functions_folder_and_the_layer() -> None:
    names = zipfile.ZipFile(io.BytesIO(releases.package(STEP).archive)).namelist()
    assert "function/handler.py" in names
    assert "python/order_saga/workflow.py" in names
    assert not [name for name in names if "__pycache__" in name]


def test_the_same_code_makes_the_same_package(tmp_path: Path) -> None:
    # the checkout and a copy of it (other paths, other file times) are one release
    assert releases.package(STEP).sha256 == releases.package(STEP, source_copy(tmp_path)).sha256


def test_changed_layer_code_makes_another_package(tmp_path: Path) -> None:
    source = source_copy(tmp_path)
    workflow = source / releases.LAYER_DIR / "order_saga" / "workflow.py"
    workflow.write_text(workflow.read_text() + "\nRELEASE_MARK = 2\n")
    assert releases.package(STEP, source).sha256 != releases.package(STEP).sha256


def test_a_package_is_unpacked_where_its_code_sha_names(releases_dir: Path) -> None:
    code = releases.package(STEP)
    folder = releases.unpack(code)
    assert folder.parent == releases_dir
    task, layer = releases.import_paths(code.sha256)
    assert (task / "handler.py").read_bytes() == (REPO_ROOT / STEP.code_dir / "handler.py").read_bytes()
    assert (layer / "order_saga" / "workflow.py").is_file()
    # unpacking again leaves the folder as it is (a published version's code never changes)
    (task / "handler.py").write_text("# kept\n")
    assert releases.unpack(code) == folder
    assert (task / "handler.py").read_text() == "# kept\n"
    assert [path.name for path in releases_dir.iterdir()] == [folder.name]


def test_a_source_without_the_code_is_refused(tmp_path: Path) -> None:
    with pytest.raises(releases.ReleaseSourceError, match="not a source tree"):
        releases.package(STEP, tmp_path)


def test_a_release_needs_a_running_stack(tmp_path: Path) -> None:
    released = subprocess.run(
        [sys.executable, "-m", "devstack", "release"],
        env=os.environ | {"DEVSTACK_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert released.returncode == 1
    assert "no local AWS stack" in released.stderr
    assert "order-saga aws up" in released.stderr
