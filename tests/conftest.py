"""Shared fixtures: thread count, tiny synthetic datasets, the reference implementation (helpers.py has the rest)."""
from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest
import torch
from helpers import REFERENCE_REPO, import_reference_networks, make_ab, make_unpaired, reference_file


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


@pytest.fixture(scope="session")
def reference_networks(tmp_path_factory):
    """The reference `models/networks.py`, imported from the mirror via `git show` (skips when absent)."""
    if not REFERENCE_REPO.is_dir():
        pytest.skip(f"reference mirror not present at {REFERENCE_REPO}")
    try:
        return import_reference_networks(tmp_path_factory.mktemp("reference"))
    except (subprocess.CalledProcessError, FileNotFoundError) as e:
        pytest.skip(f"cannot read the reference from {REFERENCE_REPO}: {e}")


@pytest.fixture(scope="session")
def reference_source():
    """Text of a file of the reference at HEAD (skips when the mirror is absent)."""
    if not REFERENCE_REPO.is_dir():
        pytest.skip(f"reference mirror not present at {REFERENCE_REPO}")
    return reference_file


@pytest.fixture
def sigint_handler():
    """Sets SIGINT's handler for a test (pytest may have been started with Ctrl-C ignored: `&` in a script)."""
    before = signal.getsignal(signal.SIGINT)
    yield lambda handler: signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGINT, before)
