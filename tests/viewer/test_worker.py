"""Extraction off the UI thread: coarse then refined, from the cache by code, newer requests first."""
from __future__ import annotations

import threading

import pytest
import torch

from imface.errors import ImfaceError
from imface.generate import extract_scan_mesh
from imface.viewer import worker as worker_module
from imface.viewer.codes import LatentSpace, face_key
from imface.viewer.worker import Cancelled, Extractor, chunk_size_for, extract_face


class Recorder:
    def __init__(self):
        self.drawn, self.errors = [], []
        self.lock = threading.Lock()

    def on_drawn(self, drawn):
        with self.lock:
            self.drawn.append(drawn)

    def on_error(self, number, message):
        with self.lock:
            self.errors.append((number, message))


@pytest.fixture
def faces(tiny):
    space = LatentSpace.from_stats(tiny.code_stats)
    mean = space.mean_state()
    return [mean.face(space), mean.with_coordinate("identity", 0, 1.5).face(space),
            mean.with_coordinate("identity", 0, -1.5).face(space)]


def _extractor(tiny, recorder, **options):
    options = {"resolution": 48, "coarse_resolution": 24, "settle_seconds": 0.05, **options}
    return Extractor(tiny, recorder.on_drawn, recorder.on_error, **options).start()


def test_extract_face_is_the_extract_command_s_mesh(tiny, faces):
    face = faces[0]
    mesh = extract_face(tiny, face, 40)
    reference = extract_scan_mesh(tiny, face.id_code, face.exp_code, face.neutral, 40)
    assert mesh.key == face_key(face) and mesh.resolution == 40
    assert mesh.vertices.shape == reference.vertices.shape
    assert torch.allclose(torch.from_numpy(mesh.vertices).double(), torch.from_numpy(reference.vertices), atol=1e-5)
    assert mesh.points_evaluated > 0 and chunk_size_for(torch.device("cpu")) == 4096


def test_a_cancelled_extraction_stops_at_its_next_batch(tiny, faces):
    with pytest.raises(Cancelled):
        extract_face(tiny, faces[0], 40, cancelled=lambda: True)


def test_a_request_draws_coarse_then_refined_and_the_cache_answers_the_second_time(tiny, faces):
    recorder = Recorder()
    extractor = _extractor(tiny, recorder)
    try:
        first = extractor.request(faces[1])
        assert extractor.wait_idle(120)
        assert [(d.number, d.mesh.resolution, d.final, d.cached) for d in recorder.drawn] == [
            (first, 24, False, False), (first, 48, True, False)]
        assert len(extractor.cache) == 2
        again = extractor.request(faces[1])
        assert extractor.wait_idle(120)
        assert [(d.number, d.mesh.resolution, d.final, d.cached) for d in recorder.drawn[2:]] == [(again, 48, True, True)]
        assert recorder.drawn[-1].mesh is recorder.drawn[1].mesh and recorder.errors == []
    finally:
        extractor.stop()


def test_a_newer_request_replaces_the_older_one(tiny, faces):
    recorder = Recorder()
    extractor = _extractor(tiny, recorder, settle_seconds=1.0)  # an old request would sit waiting to refine
    try:
        extractor.request(faces[0])
        extractor.request(faces[1])
        last = extractor.request(faces[2])
        assert extractor.wait_idle(120)
        finals = [d for d in recorder.drawn if d.final]
        assert [d.number for d in finals] == [last]  # nothing older was refined
        assert finals[0].mesh.key == face_key(faces[2])
        assert all(d.number <= last for d in recorder.drawn)
    finally:
        extractor.stop()


def test_a_request_during_the_rest_skips_the_refinement(tiny, faces):
    recorder = Recorder()
    extractor = _extractor(tiny, recorder, settle_seconds=30.0)
    try:
        first = extractor.request(faces[1])
        for _ in range(200):  # until its coarse mesh is drawn and the worker rests
            if recorder.drawn:
                break
            threading.Event().wait(0.05)
        extractor.settle_seconds = 0.0
        second = extractor.request(faces[2])
        assert extractor.wait_idle(120)
        assert [(d.number, d.final) for d in recorder.drawn] == [(first, False), (second, False), (second, True)]
    finally:
        extractor.stop()


def test_a_code_without_surface_is_reported_and_the_worker_goes_on(tiny, faces, monkeypatch):
    recorder = Recorder()
    real = worker_module.face_sdf
    monkeypatch.setattr(worker_module, "face_sdf",
                        lambda pretrained, face: (lambda points: torch.ones(points.shape[0])) if face is faces[0]
                        else real(pretrained, face))
    extractor = _extractor(tiny, recorder)
    try:
        bad = extractor.request(faces[0])
        assert extractor.wait_idle(120)
        assert len(recorder.errors) == 1 and recorder.errors[0][0] == bad
        assert "no surface" in recorder.errors[0][1] and recorder.drawn == []
        extractor.request(faces[1])
        assert extractor.wait_idle(120)
        assert recorder.drawn[-1].final
    finally:
        extractor.stop()


def test_extract_face_says_no_surface_in_one_line(tiny, faces, monkeypatch):
    monkeypatch.setattr(worker_module, "face_sdf", lambda pretrained, face: lambda points: torch.ones(points.shape[0]))
    with pytest.raises(ImfaceError, match="no surface"):
        extract_face(tiny, faces[0], 32)


def test_stop_ends_the_thread(tiny):
    recorder = Recorder()
    extractor = _extractor(tiny, recorder)
    extractor.stop()
    assert not extractor._thread.is_alive()
    assert extractor.wait_idle(1)
