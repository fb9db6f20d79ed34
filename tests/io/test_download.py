"""download_verified and the ICT archive download, against a file server on 127.0.0.1 (a thread)."""
from __future__ import annotations

import hashlib
import http.server
import socket
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from imface.builtin import ict
from imface.errors import ImfaceError
from imface.io.download import download_verified
from tests.builtin.ict_standin import standin_archive

PAYLOAD = bytes(range(256)) * 300
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def server(tmp_path, monkeypatch):
    """Serves ``root`` on 127.0.0.1; ``requests`` lists the paths asked for. ``/short`` promises more than it sends."""
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")
    root = tmp_path / "www"
    root.mkdir()
    (root / "payload.bin").write_bytes(PAYLOAD)
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def do_GET(self):  # noqa: N802 (http.server's name)
            requests.append(self.path)
            if self.path == "/short":
                self.send_response(200)
                self.send_header("Content-Length", str(len(PAYLOAD)))
                self.end_headers()
                self.wfile.write(PAYLOAD[:1000])
                self.close_connection = True
                return
            super().do_GET()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield SimpleNamespace(root=root, url=f"http://127.0.0.1:{httpd.server_address[1]}", requests=requests)
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_verified_download_lands(server, tmp_path):
    target = tmp_path / "cache" / "sources" / "payload.bin"
    assert download_verified(f"{server.url}/payload.bin", target, PAYLOAD_SHA) == target
    assert target.read_bytes() == PAYLOAD
    assert [p.name for p in target.parent.iterdir()] == ["payload.bin"]  # no .part left
    assert server.requests == ["/payload.bin"]


def test_a_wrong_hash_leaves_nothing(server, tmp_path):
    target = tmp_path / "cache" / "payload.bin"
    url = f"{server.url}/payload.bin"
    with pytest.raises(ImfaceError, match="SHA-256 mismatch") as err:
        download_verified(url, target, "0" * 64)
    assert str(err.value).startswith(url) and PAYLOAD_SHA in str(err.value)
    assert list(target.parent.iterdir()) == []


def test_a_verified_file_is_not_downloaded_again(server, tmp_path):
    target = tmp_path / "payload.bin"
    target.write_bytes(PAYLOAD)
    assert download_verified(f"{server.url}/payload.bin", target, PAYLOAD_SHA) == target
    assert server.requests == []
    target.write_bytes(b"stale")  # a file with another hash is replaced
    download_verified(f"{server.url}/payload.bin", target, PAYLOAD_SHA)
    assert target.read_bytes() == PAYLOAD and server.requests == ["/payload.bin"]


@pytest.mark.parametrize("path, match", [("/missing.bin", "download failed.*404"),
                                         ("/short", "SHA-256 mismatch")])  # a cut-off body fails its hash
def test_a_failed_download_is_one_line_and_leaves_nothing(server, tmp_path, path, match):
    target = tmp_path / "cache" / "payload.bin"
    with pytest.raises(ImfaceError, match=match) as err:
        download_verified(f"{server.url}{path}", target, PAYLOAD_SHA)
    assert "\n" not in str(err.value)
    assert list(target.parent.iterdir()) == []


def test_an_unreachable_url(tmp_path, monkeypatch):
    monkeypatch.setenv("no_proxy", "*")
    url = f"http://127.0.0.1:{_unused_port()}/payload.bin"
    with pytest.raises(ImfaceError, match="download failed") as err:
        download_verified(url, tmp_path / "payload.bin", PAYLOAD_SHA, timeout_s=5.0)
    assert str(err.value).startswith(url)
    assert list(tmp_path.iterdir()) == []


def test_a_server_that_does_not_speak_http(tmp_path, monkeypatch):
    monkeypatch.setenv("no_proxy", "*")
    listener = socket.create_server(("127.0.0.1", 0))

    def answer_garbage():
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(b"garbage\r\n\r\n")

    thread = threading.Thread(target=answer_garbage, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/payload.bin"
    try:
        with pytest.raises(ImfaceError, match="download failed"):
            download_verified(url, tmp_path / "payload.bin", PAYLOAD_SHA, timeout_s=5.0)
    finally:
        thread.join(5.0)
        listener.close()
    assert list(tmp_path.iterdir()) == []


# ---- the ICT-FaceKit archive ------------------------------------------------------------------

@pytest.fixture
def served_standin(server, tmp_path_factory) -> tuple[str, str, Path]:
    """(URL, SHA-256, local path) of the ICT stand-in's .tar.gz, served by ``server``."""
    archive = standin_archive(tmp_path_factory.getbasetemp(), "tar.gz")
    (server.root / archive.name).symlink_to(archive)
    return f"{server.url}/{archive.name}", hashlib.sha256(archive.read_bytes()).hexdigest(), archive


def test_fetch_archive_checks_the_hash(served_standin, server, tmp_path):
    url, sha, archive = served_standin
    with pytest.raises(ImfaceError, match="SHA-256 mismatch"):
        ict.fetch_archive(tmp_path, url, "f" * 64)
    assert not (tmp_path / "sources" / ict.ICT_ARCHIVE_NAME).exists()
    fetched = ict.fetch_archive(tmp_path, url, sha)
    assert fetched == tmp_path / "sources" / ict.ICT_ARCHIVE_NAME
    assert fetched.read_bytes() == archive.read_bytes()
    assert len(server.requests) == 2


def test_load_ict_downloads_from_imface_ict_url(served_standin, server, tmp_path, monkeypatch):
    url, sha, archive = served_standin
    monkeypatch.setenv("IMFACE_ICT_URL", url)
    with pytest.raises(ImfaceError, match="SHA-256 mismatch"):  # the pinned hash is the real archive's
        ict.load_ict(tmp_path)
    monkeypatch.setattr(ict, "ICT_ARCHIVE_SHA256", sha)
    model = ict.load_ict(tmp_path)
    np.testing.assert_array_equal(model.neutral_mm, ict.read_facekit(archive).neutral_mm)
    assert (tmp_path / f"ict-facekit-{sha[:16]}-v{ict._CACHE_VERSION}.npz").is_file()
    requests = len(server.requests)
    again = ict.load_ict(tmp_path)
    assert len(server.requests) == requests  # the verified archive and its .npz are reused
    np.testing.assert_array_equal(again.exp_basis_mm, model.exp_basis_mm)
