import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from daemon import Daemon, earshot_binary  # noqa: E402

CI = os.environ.get("CI") == "true"


def require(condition: bool, why: str) -> None:
    """Skips a test whose tool is missing — but under CI=true that is a failure."""
    if condition:
        return
    if CI:
        pytest.fail(why + " (CI=true: required)")
    pytest.skip(why)


@pytest.fixture
def daemon():
    require(os.access(earshot_binary(), os.X_OK), f"no earshot binary at {earshot_binary()} (swift build, or set EARSHOT_BIN)")
    # A short path: AF_UNIX socket paths are limited to 108 bytes.
    d = Path(tempfile.mkdtemp(prefix="es-py-"))
    dm = Daemon(d)
    try:
        dm.start()
        yield dm
    finally:
        dm.close()
        shutil.rmtree(d, ignore_errors=True)
