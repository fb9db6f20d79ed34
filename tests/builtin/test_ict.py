"""The ICT-FaceKit reader and face source, on the synthetic stand-in (tests/builtin/ict_standin.py)."""
from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import trimesh

from imface.builtin import ict
from imface.builtin.generator import FaceGenerator, GeneratorSettings
from imface.builtin.ict import (FACE_VERTICES, LANDMARK_IDS, MODEL_FOLDER, NEUTRAL_FILE, ICTModel, ICTSource,
                                boundary_loops, cap_loop, load_ict, load_ict_source, parse_obj_polygons,
                                parse_obj_vertices, read_facekit, triangulate)
from imface.builtin.ict_expressions import ARKIT_RECIPES, JAW_SHAPES, STYLE_RANGE
from imface.errors import ImfaceError
from imface.io.hashing import sha256_file
from tests.builtin.ict_standin import EXPRESSION_NAMES, shape_displacement, standin_face


def _assert_same(a: ICTModel, b: ICTModel) -> None:
    for field in fields(ICTModel):
        np.testing.assert_array_equal(getattr(a, field.name), getattr(b, field.name), err_msg=field.name)


def _linked_copy(clone: Path, root: Path, skip: tuple[str, ...] = (), replace: dict[str, bytes] | None = None) -> Path:
    """``root/FaceXModel`` with links to the stand-in's files, less ``skip``, with ``replace``'s contents."""
    folder = root / MODEL_FOLDER
    folder.mkdir(parents=True)
    for path in (clone / MODEL_FOLDER).iterdir():
        if path.name not in skip:
            (folder / path.name).symlink_to(path)
    for name, data in (replace or {}).items():
        (folder / name).unlink(missing_ok=True)
        (folder / name).write_bytes(data)
    return root


# ---- reading ------------------------------------------------------------------------------

def test_folder_model_folder_and_archives_read_the_same(ict_clone, ict_archives, ict_model):
    for source in (ict_clone / MODEL_FOLDER, ict_archives["tar.gz"], ict_archives["zip"]):
        _assert_same(read_facekit(source), ict_model)


def test_face_area_in_millimetres(ict_clone, ict_model):
    m = ict_model
    assert m.neutral_mm.shape == (FACE_VERTICES, 3) and m.neutral_mm.dtype == np.float32
    assert m.id_basis_mm.shape == (FACE_VERTICES, 3, 100) and m.exp_basis_mm.shape == (FACE_VERTICES, 3, 53)
    assert list(m.expression_names) == list(EXPRESSION_NAMES)
    np.testing.assert_array_equal(m.landmark_ids, LANDMARK_IDS)
    # The file is in centimetres (all 26,719 vertices); the model keeps the first 6,706, times ten.
    lines = [line.split()[1:] for line in (ict_clone / MODEL_FOLDER / NEUTRAL_FILE).read_text().splitlines()
             if line.startswith("v ")]
    assert len(lines) == ict.TOTAL_VERTICES
    np.testing.assert_allclose(m.neutral_mm, 10.0 * np.array(lines[:FACE_VERTICES], dtype=np.float64), atol=1e-4)
    extent = m.neutral_mm.max(0) - m.neutral_mm.min(0)
    assert 140.0 < extent[0] < 170.0 and 170.0 < extent[1] < 200.0, extent  # a face in mm
    face = standin_face()
    np.testing.assert_allclose(m.neutral_mm, face.vertices_mm, atol=1e-3)
    # The bases are each shape minus the neutral, in mm.
    np.testing.assert_allclose(m.id_basis_mm[..., 7], shape_displacement("identity007", face.vertices_mm), atol=2e-3)
    jaw = list(EXPRESSION_NAMES).index("jawOpen")
    np.testing.assert_allclose(m.exp_basis_mm[..., jaw], shape_displacement("jawOpen", face.vertices_mm), atol=2e-3)
    assert m.nose_tip_id == LANDMARK_IDS[30]  # the stand-in's frontmost vertex is its nose tip


def test_eyes_are_capped_and_the_mouth_stays_open(ict_model):
    face = standin_face()
    area = triangulate(face.polygons)
    assert len(boundary_loops(area)) == 4  # outer rim, two eyes, mouth
    np.testing.assert_array_equal(ict_model.faces[:len(area)], area)
    caps = ict_model.faces[len(area):]
    assert len(caps) == sum(len(rim) - 2 for rim in face.eye_rims)  # a strip over each eye, no new vertex
    assert set(np.unique(caps)) == set(np.concatenate(face.eye_rims).tolist())
    loops = sorted(boundary_loops(ict_model.faces), key=len)
    assert len(loops) == 2
    mouth, rim = loops
    assert set(mouth.tolist()) == set(face.mouth_rim.tolist())
    assert set(LANDMARK_IDS[60:68]) <= set(mouth.tolist())
    # The stand-in's eye holes are smaller than its mouth: the mouth is found by the inner lips, not by size.
    assert all(len(r) < len(mouth) for r in face.eye_rims)
    assert len(rim) > 200


def test_caps_wind_like_the_face(ict_model):
    mesh = trimesh.Trimesh(ict_model.neutral_mm, ict_model.faces, process=False)
    assert mesh.is_winding_consistent
    caps = mesh.face_normals[len(triangulate(standin_face().polygons)):]
    assert caps[:, 2].mean() > 0.5  # facing forward, as the face around the eyes does


def test_cap_loop_closes_a_convex_hole_facing_out():
    # An octagonal ring of quads around an octagonal hole, in the z = 0 plane, counter-clockwise from +z.
    angles = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    vertices = np.concatenate([np.stack([np.cos(angles), np.sin(angles), 0 * angles], 1),
                               np.stack([2 * np.cos(angles), 2 * np.sin(angles), 0 * angles], 1)])
    quads = [[k + 8, (k + 1) % 8 + 8, (k + 1) % 8, k] for k in range(8)]
    faces = triangulate(quads)
    hole = min(boundary_loops(faces), key=lambda loop: np.linalg.norm(vertices[loop], axis=1).max())
    cap = cap_loop(hole, vertices)
    assert cap.shape == (6, 3) and set(cap.ravel().tolist()) == set(range(8))
    closed = trimesh.Trimesh(vertices, np.concatenate([faces, cap]), process=False)
    assert closed.is_winding_consistent and len(boundary_loops(closed.faces)) == 1
    assert (closed.face_normals[:, 2] > 0.99).all()


def test_obj_parsing():
    data = b"# comment\nv 1 2 3\nvt 0.5 0.5\nv 4 5 6\nf 1/1 2/2 3/3 4/4\nf 2 3 4\n"
    np.testing.assert_array_equal(parse_obj_vertices(data, 2), [[1, 2, 3], [4, 5, 6]])
    assert parse_obj_polygons(data, 2) == [[0, 1, 2, 3], [1, 2, 3]]
    np.testing.assert_array_equal(triangulate([[0, 1, 2, 3], [1, 2, 3]]), [[0, 1, 2], [0, 2, 3], [1, 2, 3]])
    for call, match in [(lambda: parse_obj_vertices(data, 3, "x.obj"), "has 2 vertices"),
                        (lambda: parse_obj_polygons(data, 3, "x.obj"), "has 2 polygons"),
                        (lambda: parse_obj_vertices(b"v 1 2\nv 3 4\n", 2, "x.obj"), "exactly x y z"),
                        (lambda: parse_obj_vertices(b"v 1 2 nan3\n", 1, "x.obj"), "not numbers"),
                        (lambda: parse_obj_polygons(b"f 1 2 x\n", 1, "x.obj"), "not vertex numbers")]:
        with pytest.raises(ImfaceError, match=match) as err:
            call()
        assert str(err.value).startswith("x.obj: ")


# ---- bad input ------------------------------------------------------------------------------

@pytest.mark.parametrize("missing", ["identity042.obj", "jawOpen.obj"])
def test_a_missing_shape_names_the_source_and_the_file(ict_clone, tmp_path, missing):
    copy = _linked_copy(ict_clone, tmp_path / "copy", skip=(missing,))
    with pytest.raises(ImfaceError, match="1 shapes are missing") as err:
        read_facekit(copy)
    assert str(copy) in str(err.value) and missing in str(err.value)


def test_bad_index_and_shape_files_name_the_source(ict_clone, tmp_path):
    index = json.loads((ict_clone / MODEL_FOLDER / ict.INDEX_FILE).read_text())
    no_pucker = json.dumps({"expressions": [n for n in index["expressions"] if n != "mouthPucker"]}).encode()
    neutral = (ict_clone / MODEL_FOLDER / NEUTRAL_FILE).read_bytes()
    first_face = neutral.index(b"\nf ") + 1
    far_face = neutral[:first_face] + b"f 1/1 2/2 7000/3\n" + neutral[neutral.index(b"\n", first_face) + 1:]
    cases = {"no_list": ({ict.INDEX_FILE: b'{"fitting_expressions": []}'}, "has no expression list"),
             "no_pucker": ({ict.INDEX_FILE: no_pucker}, "lacks the expression shapes mouthPucker"),
             "far_face": ({NEUTRAL_FILE: far_face}, f"uses a vertex past {FACE_VERTICES - 1}"),
             "short": ({"identity003.obj": b"v 1 2 3\n"}, "identity003.obj: has 1 vertices"),
             "no_index": ({}, "not ICT-FaceKit")}
    for name, (replace, match) in cases.items():
        skip = (ict.INDEX_FILE,) if name == "no_index" else ()
        copy = _linked_copy(ict_clone, tmp_path / name, skip=skip, replace=replace)
        with pytest.raises(ImfaceError, match=match) as err:
            read_facekit(copy)
        assert str(copy) in str(err.value) and "\n" not in str(err.value), name


def test_not_ict_and_missing_paths(tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("not a face model\n")
    with pytest.raises(ImfaceError, match="not an ICT-FaceKit folder") as err:
        read_facekit(other)
    assert str(other) in str(err.value)
    for call in (read_facekit, lambda p: load_ict(tmp_path / "cache", p)):
        with pytest.raises(ImfaceError, match="no such file or folder") as err:
            call(tmp_path / "nowhere")
        assert str(tmp_path / "nowhere") in str(err.value)


def test_corrupt_archives_name_the_path(ict_archives, tmp_path):
    tar_bytes, zip_bytes = ict_archives["tar.gz"].read_bytes(), ict_archives["zip"].read_bytes()

    def flipped(data: bytes) -> bytes:  # 64 damaged bytes in the middle of a member's compressed data
        middle = len(data) // 2
        return data[:middle] + bytes(b ^ 0x5A for b in data[middle:middle + 64]) + data[middle + 64:]

    cases = {"truncated.tar.gz": tar_bytes[:len(tar_bytes) // 2], "flipped.tar.gz": flipped(tar_bytes),
             "flipped.zip": flipped(zip_bytes), "truncated.zip": zip_bytes[:len(zip_bytes) // 2],
             "text.tar.gz": b"hello\n"}
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(ImfaceError) as err:
            read_facekit(path)
        assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value), name


# ---- cache ------------------------------------------------------------------------------------

def test_load_ict_caches_an_npz_and_reads_it(ict_archives, ict_model, tmp_path, monkeypatch):
    reads = []
    real = ict.read_facekit
    monkeypatch.setattr(ict, "read_facekit", lambda source: reads.append(source) or real(source))
    archive = ict_archives["tar.gz"]
    _assert_same(load_ict(tmp_path, archive), ict_model)
    cached = tmp_path / f"ict-facekit-{sha256_file(archive)[:16]}-v{ict._CACHE_VERSION}.npz"
    assert list(tmp_path.glob("*.npz")) == [cached] and len(reads) == 1
    _assert_same(load_ict(tmp_path, archive), ict_model)
    assert len(reads) == 1  # the second load read the .npz
    cached.write_bytes(b"damaged")
    _assert_same(load_ict(tmp_path, archive), ict_model)
    assert len(reads) == 2  # a damaged cache is rebuilt
    with np.load(cached, allow_pickle=False) as data:
        assert set(data.files) == {f.name for f in fields(ICTModel)}


def test_a_changed_local_folder_is_read_again(ict_clone, tmp_path):
    copy = _linked_copy(ict_clone, tmp_path / "copy")
    load_ict(tmp_path / "cache", copy)
    load_ict(tmp_path / "cache", copy)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1
    target = copy / MODEL_FOLDER / "identity000.obj"
    data = target.read_bytes()
    target.unlink()
    target.write_bytes(data)  # same bytes, a new file
    load_ict(tmp_path / "cache", copy)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2


# ---- the face source ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def source(ict_model) -> ICTSource:
    return ICTSource(ict_model)


def _recovered(source: ICTSource, motion: np.ndarray, names: list[str]) -> tuple[dict[str, float], float]:
    """The shape weights (name -> weight) that make ``motion`` from ``names``' shapes, and the RMS misfit (mm)."""
    columns = [list(EXPRESSION_NAMES).index(n) for n in names]
    basis = source.model.exp_basis_mm[:, :, columns].reshape(-1, len(columns)).astype(np.float64)
    weights, *_ = np.linalg.lstsq(basis, motion.ravel().astype(np.float64), rcond=None)
    misfit = np.sqrt(np.mean((basis @ weights - motion.ravel()) ** 2))
    return dict(zip(names, weights)), float(misfit)


@pytest.mark.parametrize("expression, level", [("mouth_stretch", 0.8), ("grin", 0.6), ("smile", 1.0)])
def test_expression_motion_is_the_recipe_with_the_jaw_in_bone(source, expression, level):
    soft, bone = source.expression_motion(expression, level, np.random.default_rng(5))
    assert soft.shape == (FACE_VERTICES, 3) and soft.dtype == np.float32
    recipe = ARKIT_RECIPES[expression]
    soft_names = [n for n in EXPRESSION_NAMES if n not in JAW_SHAPES]
    weights, misfit = _recovered(source, soft, soft_names)
    jaw_weights = {}
    if any(n in JAW_SHAPES for n in recipe):
        jaw_weights, jaw_misfit = _recovered(source, bone, sorted(JAW_SHAPES))
        assert jaw_misfit < 1e-4
    else:
        assert bone is None
    assert misfit < 1e-4
    lo, hi = STYLE_RANGE
    for name, weight in {**weights, **jaw_weights}.items():
        if name in recipe:
            expected = recipe[name] * level
            assert expected * lo - 1e-3 <= weight <= min(1.0, expected * hi) + 1e-3, (name, weight)
        else:
            assert abs(weight) < 1e-3, (name, weight)


def test_weights_are_capped_at_one(source):
    capped = []
    for seed in range(10):
        soft, _ = source.expression_motion("brow_lower", 1.0, np.random.default_rng(seed))
        weights, _ = _recovered(source, soft, [n for n in EXPRESSION_NAMES if n not in JAW_SHAPES])
        capped += [weights["browDown_L"], weights["browDown_R"]]
    assert max(capped) <= 1.0 + 1e-3 and max(capped) > 1.0 - 1e-3  # 0.9 x up to 1.2 would pass 1


def test_neutral_moves_nothing(source):
    soft, bone = source.expression_motion("neutral", 0.0, np.random.default_rng(0))
    assert bone is None and not soft.any()


def test_draws_are_deterministic_per_rng(source):
    a = source.expression_motion("mouth_stretch", 0.7, np.random.default_rng(3))
    b = source.expression_motion("mouth_stretch", 0.7, np.random.default_rng(3))
    c = source.expression_motion("mouth_stretch", 0.7, np.random.default_rng(4))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert np.abs(a[0] - c[0]).max() > 1e-3 and np.abs(a[1] - c[1]).max() > 1e-3
    w1, rest1 = source.identity_shape(np.random.default_rng(1))
    w2, rest2 = source.identity_shape(np.random.default_rng(1))
    _, rest3 = source.identity_shape(np.random.default_rng(2))
    assert w1.shape == (100,) and rest1.shape == (FACE_VERTICES, 3) and rest1.dtype == np.float64
    np.testing.assert_array_equal(rest1, rest2)
    np.testing.assert_allclose(rest1, source.model.neutral_mm + source.model.id_basis_mm @ w1, atol=1e-3)
    assert np.abs(rest1 - rest3).max() > 0.5


def test_source_identity_and_provenance(source, ict_archives, tmp_path):
    assert source.name == "ict" and source.num_vertices == FACE_VERTICES
    assert "USC Institute for Creative Technologies" in source.notice and "MIT License" in source.notice
    assert source.provenance() == {f"{ict.ICT_REPOSITORY}@{ict.ICT_COMMIT}": ict.ICT_ARCHIVE_SHA256}
    source.provenance().clear()  # a copy
    assert source.provenance()
    local = load_ict_source(tmp_path, ict_archives["zip"])
    assert local.provenance() == {f"{ict.ICT_REPOSITORY} (local copy)": str(ict_archives["zip"].resolve())}


def test_the_generator_runs_on_the_standin(source):
    generator = FaceGenerator(source, GeneratorSettings(seed=2))
    neutral = generator.neutral(0)
    assert neutral.shape == (FACE_VERTICES, 3) and np.isfinite(neutral).all()
    for expression in ("smile", "mouth_stretch", "eye_closed", "cheek_blowing", "jaw_left"):
        shape = generator.registered(0, expression)
        assert np.isfinite(shape).all() and np.abs(shape - neutral).max() > 1.0, expression
    lips = generator.landmarks(generator.registered(0, "mouth_stretch"))
    assert (lips[61:64, 1] - lips[[67, 66, 65], 1]).min() > 5.0  # the jaw opens the mouth


def test_the_real_archive_is_pinned():
    assert ict.ICT_COMMIT in ict.ICT_ARCHIVE_URL and ict.ICT_ARCHIVE_URL.startswith("https://github.com/")
    assert len(ict.ICT_ARCHIVE_SHA256) == 64 and int(ict.ICT_ARCHIVE_SHA256, 16) >= 0
    assert len(LANDMARK_IDS) == len(set(LANDMARK_IDS)) == 68 and max(LANDMARK_IDS) < FACE_VERTICES

