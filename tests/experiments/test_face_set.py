"""The cross-source face set (experiments/face_set.py): its inputs are in the frames and units they
claim, and the fit's face check takes its faces, names their units and refuses its non-faces."""
from __future__ import annotations

import numpy as np
import pytest

from experiments.face_set import DEFAULT_FRAMES, FRAMES, UNITS, build_faces, build_non_faces, check_case
from imface.io.mesh import read_mesh
from tests.baselines import make_face


def _depth_axis(points: np.ndarray) -> np.ndarray:
    """The smallest principal axis of a point set: a face's depth, along its view."""
    return np.linalg.svd(points - points.mean(axis=0), full_matrices=False)[2][-1]


def test_faces_come_in_every_frame_and_unit_as_they_claim(tmp_path):
    vertices, faces = make_face(np.zeros(6), step=0.03)
    cases = build_faces({"synthetic:001/1_neutral": (vertices, faces)}, tmp_path, kinds=("mesh", "cloud"))
    assert len(cases) == 2 * len(DEFAULT_FRAMES) and {c.frame for c in cases} == set(DEFAULT_FRAMES)
    assert {c.unit for c in cases} == set(UNITS) and all(c.path.is_file() and c.face for c in cases)
    for case in cases:
        points = np.load(case.path) if case.kind == "cloud" else read_mesh(case.path).vertices
        if case.kind == "cloud":  # the face alone: its width is about 1.4 model units = 140 mm
            width = np.ptp(points, axis=0).max() * UNITS[case.unit]
            assert 80 < width < 220, (case.name, width)
            view = FRAMES[case.frame] @ np.array([0.0, 0.0, 1.0])
            assert abs(_depth_axis(points) @ view) > 0.8, case.name  # looks the way its frame says


def test_non_faces_come_in_two_units_each(tmp_path):
    cases = build_non_faces(tmp_path)
    shapes = {c.name.rsplit("_", 1)[0] for c in cases}
    assert len(shapes) == 6 and len(cases) == 12 and not any(c.face for c in cases)
    assert {c.unit for c in cases} == set(UNITS)


def test_check_case_refuses_the_back_of_a_head_with_its_margins(tmp_path):
    template, _ = make_face(np.zeros(6), step=0.03)
    back = next(c for c in build_non_faces(tmp_path) if "back_of_head" in c.name)
    result = check_case(back, template, "auto")
    assert not result["face"] and "no face found" in result["error"]
    assert min(result["alignment"]["margins"].values()) < 0


@pytest.mark.slow
def test_the_shipped_models_faces_in_every_frame_and_unit_are_taken_and_non_faces_refused(tmp_path):
    """Faces drawn from the shipped model's code distribution, as meshes with clutter and one-view
    clouds in every export frame and unit, with --unit auto and the true unit; and the non-faces."""
    from imface.fitting.run import _mean_face_front
    from imface.generate import face_mesh, sample_faces
    from imface.pretrained import load_pretrained

    pretrained = load_pretrained(None, "cpu")
    model = pretrained.model.eval().requires_grad_(False)
    meshes = {}
    for face in sample_faces(pretrained.code_stats, 2, seed=3):  # with expressions
        mesh = face_mesh(model, face.id_code, face.exp_code, face.neutral, resolution=96)
        meshes[f"shipped:{face.name}"] = (mesh.vertices, mesh.faces)
    template = _mean_face_front(model, {k: v.float() for k, v in pretrained.code_stats.to_tensors().items()})
    wrong = []
    for case in build_faces(meshes, tmp_path / "faces") + build_non_faces(tmp_path / "other"):
        for unit in ("auto",) + ((case.unit,) if case.face and case.unit != "arbitrary" else ()):
            result = check_case(case, template, unit)
            named = (result["alignment"] or {}).get("unit")
            if result["face"] != case.face or (case.face and unit == "auto" and named != case.unit):
                wrong.append((case.name, unit, result["error"], named))
    assert not wrong
