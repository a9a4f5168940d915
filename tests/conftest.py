"""Shared fixtures: thread count, tiny synthetic datasets, the reference implementation (helpers.py has the rest)."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import REFERENCE_REPO, make_ab, make_unpaired


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module (opt in: `pytestmark = pytest.mark.usefixtures("one_thread")`).

    The nets in these tests are tiny: two threads fighting over a shared 2-core CPU are up to 10x
    slower than one. Module-scoped, so it also covers the module-scoped fixtures that train.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def unpaired_dir(tmp_path: Path) -> Path:
    return make_unpaired(tmp_path / "unpaired")


@pytest.fixture
def ab_dir(tmp_path: Path) -> Path:
    return make_ab(tmp_path / "ab")


@pytest.fixture(scope="session")
def session_unpaired(tmp_path_factory) -> Path:
    """One read-only unpaired dataset for the whole session (tests must not modify it)."""
    return make_unpaired(tmp_path_factory.mktemp("data") / "unpaired")


# --- the reference implementation (read-only mirror) -------------------------------------------


def _git_show(path: str) -> str:
    return subprocess.run(["git", "-C", str(REFERENCE_REPO), "show", f"HEAD:{path}"], check=True,
                          capture_output=True, text=True).stdout


@pytest.fixture(scope="session")
def reference_networks(tmp_path_factory):
    """The reference `models/networks.py`, imported from the mirror via `git show` (skips when absent)."""
    if not REFERENCE_REPO.is_dir():
        pytest.skip(f"reference mirror not present at {REFERENCE_REPO}")
    try:
        networks, stylegan = _git_show("models/networks.py"), _git_show("models/stylegan_networks.py")
    except (subprocess.CalledProcessError, FileNotFoundError) as e:
        pytest.skip(f"cannot read the reference from {REFERENCE_REPO}: {e}")
    pkg = tmp_path_factory.mktemp("reference") / "cut_reference_models"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "networks.py").write_text(networks)
    (pkg / "stylegan_networks.py").write_text(stylegan)
    name = "cut_reference_models"
    spec = importlib.util.spec_from_file_location(name, pkg / "__init__.py", submodule_search_locations=[str(pkg)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    import importlib as _il

    return _il.import_module(f"{name}.networks")


@pytest.fixture(scope="session")
def reference_source():
    """Text of a file of the reference at HEAD (skips when the mirror is absent)."""
    if not REFERENCE_REPO.is_dir():
        pytest.skip(f"reference mirror not present at {REFERENCE_REPO}")
    return _git_show
