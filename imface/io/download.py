"""Downloads that land in a cache only when their SHA-256 is the pinned one."""
from __future__ import annotations

import http.client
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from imface.errors import ImfaceError
from imface.io.hashing import sha256_file


def download_verified(url: str, target: Path, sha256: str, timeout_s: float = 60.0) -> Path:
    """Return ``target``, downloading ``url`` into it unless it already has SHA-256 ``sha256``.

    The bytes go to a temporary file next to ``target`` and are renamed onto it only when
    their hash is ``sha256``; a wrong hash or a failed download raises :class:`ImfaceError`
    and leaves nothing behind.
    """
    target = Path(target)
    if target.is_file() and sha256_file(target) == sha256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 (pinned https URL)
                    for block in iter(lambda: response.read(1 << 20), b""):
                        out.write(block)
            # HTTPException: an answer that is not HTTP (BadStatusLine is no OSError)
            except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as err:
                raise ImfaceError(url, f"download failed (offline? use a local copy instead): {err}") from err
        actual = sha256_file(tmp)
        if actual != sha256:
            raise ImfaceError(url, f"SHA-256 mismatch: expected {sha256}, got {actual}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target
