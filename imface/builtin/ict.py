"""ICT-FaceKit (ICT Face Model Light, MIT licence) read as the generator's second face source.

The public repository ``ICT-VGL/ICT-FaceKit`` at commit :data:`ICT_COMMIT` holds, in its
``FaceXModel/`` folder, a generic neutral head (26,719 vertices, centimetres), 100 PCA
identity shapes from light-stage scans (``identity000.obj`` ... ``identity099.obj``, each the
neutral plus one unit-variance mode) and 53 ARKit-named expression shapes (``jawOpen.obj``,
``mouthSmile_L.obj``, ...). We keep its narrow face area (vertex ids 0-6705), in millimetres, with
the eye openings closed by strips of triangles over their rims (no new vertices; the mouth
stays open, as on the BFM),
so a registered mesh is the face area in ICT's own vertex order.

The archive is downloaded once (GitHub's archive of the pinned commit, checked against
:data:`ICT_ARCHIVE_SHA256`), or read from a local copy (``--source`` a clone, its
``FaceXModel/`` folder or the archive), and the arrays are cached as one ``.npz``.
"""
from __future__ import annotations

import hashlib
import json
import os
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from imface.builtin.ict_expressions import (ARKIT_RECIPES, CHEEK_INFLATION, JAW_ARTICULATION, JAW_SHAPES,
                                            STYLE_RANGE)
from imface.builtin.source import cache_dir, cached_arrays
from imface.errors import ImfaceError
from imface.io.download import download_verified
from imface.io.hashing import sha256_file

ICT_REPOSITORY = "ICT-VGL/ICT-FaceKit"
ICT_COMMIT = "da5f95a607f5e6b37755b38d3385d7f2853732e5"
#: GitHub's archive of the commit; ``$IMFACE_ICT_URL`` replaces it (a mirror, or a test server).
ICT_ARCHIVE_URL = f"https://github.com/{ICT_REPOSITORY}/archive/{ICT_COMMIT}.tar.gz"
ICT_ARCHIVE_NAME = f"ICT-FaceKit-{ICT_COMMIT}.tar.gz"
#: SHA-256 of ``git archive --format=tar.gz --prefix=ICT-FaceKit-<commit>/ <commit>`` (git 2.39),
#: the bytes GitHub serves for the commit's archive.
ICT_ARCHIVE_SHA256 = "4dbddfce2dee60562bc5c4d940030b331423fa24b5097dca962e829da1b1f4ef"
ICT_NOTICE = """ICT-FaceKit (https://github.com/ICT-VGL/ICT-FaceKit), MIT License

Copyright (c) 2020 USC Institute for Creative Technologies

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""

MODEL_FOLDER = "FaceXModel"
NEUTRAL_FILE = "generic_neutral_mesh.obj"
INDEX_FILE = "vertex_indices.json"
IDENTITY_MODES = 100
TOTAL_VERTICES = 26_719
#: ICT's narrow face area (its README): vertex ids 0-6705 and polygon ids 0-6559, the front of the
#: face from ear to ear without the ears, the back of the head and the neck's sides (the full face
#: area, ids 0-9408, adds those; the generator's effects are made for the front of a face).
FACE_VERTICES = 6_706
FACE_POLYGONS = 6_560
MM_PER_ICT_UNIT = 10.0  # ICT's meshes are in centimetres
#: Multi-PIE 68 landmark vertex ids (ICT's README), iBUG order.
LANDMARK_IDS = (1225, 1888, 1052, 367, 1719, 1722, 2199, 1447, 966, 3661, 4390, 3927, 3924, 2608, 3272, 4088,
                3443, 268, 493, 1914, 2044, 1401, 3615, 4240, 4114, 2734, 2509, 978, 4527, 4942, 4857, 1140, 2075,
                1147, 4269, 3360, 1507, 1542, 1537, 1528, 1518, 1511, 3742, 3751, 3756, 3721, 3725, 3732, 5708,
                5695, 2081, 0, 4275, 6200, 6213, 6346, 6461, 5518, 5957, 5841, 5702, 5711, 5533, 6216, 6207, 6470,
                5517, 5966)
_CACHE_VERSION = 3


@dataclass(frozen=True)
class ICTModel:
    """The ICT face area as arrays, millimetres, frame x to the subject's left, y up, z forward.

    A shape is ``neutral_mm + id_basis_mm @ w_id + exp_basis_mm @ w_exp`` with ``w_id`` (100,)
    standard normal and ``w_exp`` (53,) ARKit weights in [0, 1].
    """

    neutral_mm: np.ndarray  #: (V, 3) float32, V = 6,706
    id_basis_mm: np.ndarray  #: (V, 3, 100) float32
    exp_basis_mm: np.ndarray  #: (V, 3, 53) float32
    expression_names: np.ndarray  #: (53,) str, ARKit names with _L / _R
    faces: np.ndarray  #: (F, 3) int64: the face area's triangles, then the two eye caps
    landmark_ids: np.ndarray  #: (68,) int64
    nose_tip_id: int  #: the vertex of largest z on the neutral


def parse_obj_vertices(data: bytes, count: int, name: str = "obj") -> np.ndarray:
    """The first ``count`` ``v`` positions of an OBJ file's bytes: (count, 3) float64."""
    lines = [line[2:] for line in data.split(b"\n") if line.startswith(b"v ")]
    if len(lines) < count:
        raise ImfaceError(name, f"has {len(lines)} vertices, expected at least {count}")
    try:
        values = np.array(b" ".join(lines[:count]).split(), dtype=np.float64)
    except ValueError as err:
        raise ImfaceError(name, f"a vertex line is not numbers: {err}") from err
    if values.size != 3 * count:
        raise ImfaceError(name, "vertex lines must have exactly x y z")
    return values.reshape(count, 3)


def parse_obj_polygons(data: bytes, count: int, name: str = "obj") -> list[list[int]]:
    """The first ``count`` polygons of an OBJ file's ``f`` lines as 0-based vertex ids."""
    polygons = []
    for line in data.split(b"\n"):
        if line.startswith(b"f "):
            try:
                polygons.append([int(token.split(b"/")[0]) - 1 for token in line.split()[1:]])
            except ValueError as err:
                raise ImfaceError(name, f"a face line is not vertex numbers: {err}") from err
            if len(polygons) == count:
                return polygons
    raise ImfaceError(name, f"has {len(polygons)} polygons, expected at least {count}")


def triangulate(polygons: list[list[int]]) -> np.ndarray:
    """Fan-triangulate convex polygons: (F, 3) int64."""
    return np.array([(p[0], p[k], p[k + 1]) for p in polygons for k in range(1, len(p) - 1)], dtype=np.int64)


def boundary_loops(faces: np.ndarray) -> list[np.ndarray]:
    """The boundary loops of a manifold triangle mesh, each ordered along its faces' own edge direction."""
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    key = np.sort(edges, axis=1)
    _, inverse, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    following = {int(a): int(b) for a, b in edges[counts[inverse.ravel()] == 1]}
    loops = []
    while following:
        start = next(iter(following))
        loop, vertex = [start], following.pop(start)
        while vertex != start:
            loop.append(vertex)
            vertex = following.pop(vertex)
        loops.append(np.array(loop, dtype=np.int64))
    return loops


def cap_loop(loop: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Close a hole with a zigzag strip over its rim, from its leftmost vertex: (n - 2, 3) int64.

    The strip runs against the loop's direction, so its winding matches the surrounding faces.
    """
    loop = np.roll(loop, -int(np.argmin(vertices[loop, 0])))[::-1]
    a, b, out, forward = 1, len(loop) - 1, [(loop[0], loop[1], loop[-1])], True
    while b - a > 1:
        if forward:
            out.append((loop[a], loop[a + 1], loop[b]))
            a += 1
        else:
            out.append((loop[a], loop[b - 1], loop[b]))
            b -= 1
        forward = not forward
    return np.array(out, dtype=np.int64)


def _members(source: Path) -> Iterator[tuple[str, bytes]]:
    """(file name, bytes) of every file in the FaceXModel folder of a folder or an archive."""
    if source.is_dir():
        folder = source if (source / NEUTRAL_FILE).is_file() else source / MODEL_FOLDER
        if not (folder / NEUTRAL_FILE).is_file():
            raise ImfaceError(source, f"no {MODEL_FOLDER}/{NEUTRAL_FILE}: not an ICT-FaceKit folder")
        for path in sorted(folder.iterdir()):
            if path.is_file():
                yield path.name, path.read_bytes()
    elif zipfile.is_zipfile(source):
        try:
            with zipfile.ZipFile(source) as archive:
                for name in archive.namelist():
                    if f"{MODEL_FOLDER}/" in name and not name.endswith("/"):
                        yield name.rsplit("/", 1)[-1], archive.read(name)
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as err:  # a damaged member (CRC, deflate)
            raise ImfaceError(source, f"damaged zip archive: {err}") from err
    else:
        try:
            with tarfile.open(source, "r:*") as archive:
                for member in archive:
                    if member.isfile() and f"{MODEL_FOLDER}/" in member.name:
                        handle = archive.extractfile(member)
                        yield member.name.rsplit("/", 1)[-1], handle.read() if handle else b""
                # tarfile stops quietly at a damaged header; reading on to the end checks the gzip CRC.
                while archive.fileobj.read(1 << 20):
                    pass
        except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
            raise ImfaceError(source, f"not a readable ICT-FaceKit archive or folder: {err}") from err


def read_facekit(source: Path) -> ICTModel:
    """Read ICT-FaceKit's face area from a clone, its ``FaceXModel/`` folder, or an archive of either."""
    source = Path(source)
    if not source.exists():
        raise ImfaceError(source, "no such file or folder")
    files = dict(_members(source))
    if NEUTRAL_FILE not in files or INDEX_FILE not in files:
        raise ImfaceError(source, f"no {MODEL_FOLDER}/{NEUTRAL_FILE} and {INDEX_FILE}: not ICT-FaceKit")
    try:
        expression_names = list(json.loads(files[INDEX_FILE])["expressions"])
    except (ValueError, KeyError, TypeError) as err:
        raise ImfaceError(source, f"{INDEX_FILE} has no expression list: {err}") from err
    missing = [n for n in [f"identity{k:03d}" for k in range(IDENTITY_MODES)] + expression_names
               if f"{n}.obj" not in files]
    if missing:
        raise ImfaceError(source, f"{len(missing)} shapes are missing, first {missing[0]}.obj")
    unknown = sorted({name for recipe in ARKIT_RECIPES.values() for name in recipe} - set(expression_names))
    if unknown:
        raise ImfaceError(source, f"{INDEX_FILE} lacks the expression shapes {', '.join(unknown)}")

    def vertices(name: str) -> np.ndarray:
        return parse_obj_vertices(files[name], FACE_VERTICES, f"{source}: {name}") * MM_PER_ICT_UNIT

    neutral = vertices(NEUTRAL_FILE)
    faces = triangulate(parse_obj_polygons(files[NEUTRAL_FILE], FACE_POLYGONS, f"{source}: {NEUTRAL_FILE}"))
    if faces.max() >= FACE_VERTICES:
        raise ImfaceError(source, f"{NEUTRAL_FILE}: a face-area polygon uses a vertex past {FACE_VERTICES - 1}")
    loops = sorted(boundary_loops(faces), key=len)[:-1]  # the longest is the outer rim
    inner_lips = neutral[list(LANDMARK_IDS[60:68])].mean(0)
    mouth = int(np.argmin([np.linalg.norm(neutral[loop].mean(0) - inner_lips) for loop in loops]))
    # The eyes are closed over (a scanner sees the eyeball); the mouth stays open, as on the BFM.
    caps = [cap_loop(loop, neutral) for k, loop in enumerate(loops) if k != mouth]
    identity = np.stack([vertices(f"identity{k:03d}.obj") - neutral for k in range(IDENTITY_MODES)], axis=-1)
    expression = np.stack([vertices(f"{n}.obj") - neutral for n in expression_names], axis=-1)
    return ICTModel(neutral_mm=neutral.astype(np.float32), id_basis_mm=identity.astype(np.float32),
                    exp_basis_mm=expression.astype(np.float32), expression_names=np.array(expression_names),
                    faces=np.concatenate([faces, *caps]), landmark_ids=np.array(LANDMARK_IDS, dtype=np.int64),
                    nose_tip_id=int(np.argmax(neutral[:, 2])))


def _fingerprint(folder: Path) -> str:
    """A cheap key of a local folder: names, sizes and modification times of its files."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.relative_to(folder)}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def fetch_archive(cache: Path | None = None, url: str | None = None, sha256: str | None = None) -> Path:
    """The pinned ICT-FaceKit archive in ``<cache>/sources``, downloaded and verified if missing.

    ``sha256`` defaults to :data:`ICT_ARCHIVE_SHA256` as it is at call time (the cache key in
    :func:`load_ict` reads it there too).
    """
    url = url or os.environ.get("IMFACE_ICT_URL") or ICT_ARCHIVE_URL
    return download_verified(url, (cache or cache_dir()) / "sources" / ICT_ARCHIVE_NAME,
                             sha256 or ICT_ARCHIVE_SHA256, timeout_s=600.0)


def load_ict(cache: Path | None = None, source: Path | None = None) -> ICTModel:
    """The ICT model, from the cached ``.npz`` when there is one.

    Without ``source`` the pinned archive is downloaded on first use (about 130 MB); with it,
    the local copy is read (a clone, its ``FaceXModel/`` folder or an archive) and cached under
    a key of its contents (an archive's SHA-256, a folder's file names, sizes and times).
    """
    cache = cache or cache_dir()
    if source is None:
        source, key = fetch_archive(cache), ICT_ARCHIVE_SHA256
    else:
        source = Path(source)
        if not source.exists():
            raise ImfaceError(source, "no such file or folder")
        # A clone's own files (.git and the rest) do not change the model: only its FaceXModel/ counts.
        model_dir = source / MODEL_FOLDER if (source / MODEL_FOLDER).is_dir() else source
        key = _fingerprint(model_dir) if source.is_dir() else sha256_file(source)
    cached = cache / f"ict-facekit-{key[:16]}-v{_CACHE_VERSION}.npz"
    return cached_arrays(cached, ICTModel, lambda: read_facekit(source))


class ICTSource:
    """ICT-FaceKit as the generator's face source (:class:`imface.builtin.source.FaceSource`).

    A person is the neutral plus the 100 identity modes with standard-normal weights; an
    expression's linear part is its ARKit weights (:data:`ARKIT_RECIPES`) times the intensity,
    each scaled per scan by a factor in :data:`STYLE_RANGE`.
    """

    name = "ict"
    notice = ICT_NOTICE  #: shipped with the data and with weights trained on it
    jaw_articulation = JAW_ARTICULATION
    cheek_inflation = CHEEK_INFLATION

    def __init__(self, model: ICTModel, provenance: dict[str, str] | None = None):
        self.model = model
        self.faces, self.landmark_ids, self.nose_tip_id = model.faces, model.landmark_ids, model.nose_tip_id
        self.mean_mm = model.neutral_mm
        self._mean64 = model.neutral_mm.astype(np.float64)
        self._column = {str(n): k for k, n in enumerate(model.expression_names)}
        self._is_jaw = np.array([str(n) in JAW_SHAPES for n in model.expression_names], dtype=np.float32)
        self._provenance = provenance or {f"{ICT_REPOSITORY}@{ICT_COMMIT}": ICT_ARCHIVE_SHA256}

    @property
    def num_vertices(self) -> int:
        return int(self.mean_mm.shape[0])

    def identity_shape(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        weights = rng.normal(0.0, 1.0, IDENTITY_MODES)
        return weights, self._mean64 + self.model.id_basis_mm @ weights.astype(np.float32)

    def expression_motion(self, expression: str, level: float,
                          style: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
        recipe = ARKIT_RECIPES[expression]
        weights = np.zeros(len(self._column), dtype=np.float32)
        for name, weight in recipe.items():  # a few shapes per expression
            weights[self._column[name]] = min(1.0, weight * level * style.uniform(*STYLE_RANGE))
        bone = weights * self._is_jaw
        return self.model.exp_basis_mm @ (weights - bone), (self.model.exp_basis_mm @ bone if bone.any() else None)

    def provenance(self) -> dict[str, str]:
        return dict(self._provenance)


def load_ict_source(cache: Path | None = None, source: Path | None = None) -> ICTSource:
    """The ICT face source: the pinned archive (downloaded once), or ``source``, a local copy."""
    model = load_ict(cache, source)
    provenance = None
    if source is not None:
        provenance = {f"{ICT_REPOSITORY} (local copy)": str(Path(source).resolve())}
    return ICTSource(model, provenance)
