"""Writing files atomically, without torch: the command line and the downloads need it too."""
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

UMASK = os.umask(0o022)  # the process's umask (reading it means setting it), restored on the next line
os.umask(UMASK)


def atomic_write(path: Path, write: Callable[[str], object]) -> None:
    """Call write(tmp_path) then rename onto `path`: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~UMASK)  # not mkstemp's 0600 (which safetensors keeps too): what open() would give
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
