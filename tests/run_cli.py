"""Running the ``imface`` command line in-process, as a user types it."""
from __future__ import annotations

import pytest

from imface.cli.main import main


def run_cli(*args: str) -> int:
    """The exit code of ``imface --threads 1 ARGS...`` (output goes to capsys)."""
    with pytest.raises(SystemExit) as exit_info:
        main(["--threads", "1", *args])
    return int(exit_info.value.code or 0)
