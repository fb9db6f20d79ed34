"""FaceScape facts: its 20 expressions, the two topologies of its TU models with their landmark
vertex ids, and the ImFace paper's split of FaceScape.

TU models ("topologically uniformed") share one mesh topology per release, so 68 vertex ids give
the iBUG landmarks of every model. FaceScape's toolkit (github.com/zhuhao-nju/facescape,
``toolkit/predef/landmark_indices.npz``) publishes them for its two topologies: ``v10`` (TU
models and bilinear model 1.0-1.3; 26,317 vertices, the length of the toolkit's
``sym_dict_old.npy`` for them) and ``v16`` (bilinear model 1.6 and later, symmetric; 26,278
vertices, the length of ``sym_dict.npy``; the TU model the ImFace authors publish as a demo has
this topology). The ids ship in ``facescape_data/landmark_ids_<version>.txt``; the topology of a
dataset is told from its vertex count.

The ImFace authors (github.com/MingwuZheng/ImFace, ``config/``) train on 355 identities and 15
of the 20 expressions and test on 10 identities (all 20 expressions); their lists ship in
``facescape_data/paper_*_identities.txt``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from imface.errors import ImfaceError
from imface.io.mesh import read_mesh

DATA_DIR = Path(__file__).resolve().with_name("facescape_data")

#: FaceScape's 20 expressions, by their 1-based number.
FACESCAPE_EXPRESSIONS = {
    1: "neutral", 2: "smile", 3: "mouth_stretch", 4: "anger", 5: "jaw_left", 6: "jaw_right",
    7: "jaw_forward", 8: "mouth_left", 9: "mouth_right", 10: "dimpler", 11: "chin_raiser",
    12: "lip_puckerer", 13: "lip_funneler", 14: "sadness", 15: "lip_roll", 16: "grin",
    17: "cheek_blowing", 18: "eye_closed", 19: "brow_raiser", 20: "brow_lower",
}
#: The expressions (FaceScape numbers) the ImFace authors train on (config/train_lif_facescape.yaml).
PAPER_TRAIN_EXPRESSIONS = (1, 2, 3, 4, 7, 10, 11, 12, 13, 14, 15, 16, 17, 19, 20)


@dataclass(frozen=True)
class TuTopology:
    """One TU mesh topology: its name, vertex count and the file of its 68 landmark vertex ids."""

    name: str
    vertex_count: int
    landmark_ids_path: Path


#: The known TU topologies by vertex count.
TU_TOPOLOGIES: dict[int, TuTopology] = {
    topology.vertex_count: topology for topology in (
        TuTopology("v10", 26_317, DATA_DIR / "landmark_ids_v10.txt"),
        TuTopology("v16", 26_278, DATA_DIR / "landmark_ids_v16.txt"),
    )
}


def tu_topology(vertex_count: int, mesh_path: str | os.PathLike) -> TuTopology:
    """The TU topology of a mesh with ``vertex_count`` vertices; one error line naming the mesh otherwise."""
    topology = TU_TOPOLOGIES.get(int(vertex_count))
    if topology is None:
        known = ", ".join(f"{t.name} has {t.vertex_count:,}" for t in TU_TOPOLOGIES.values())
        raise ImfaceError(
            mesh_path, f"{vertex_count:,} vertices: not a FaceScape TU topology ({known}); pass "
            "--landmark-indices FILE with the 68 vertex ids of this topology",
        )
    return topology


def _read_id_list(path: Path) -> list[str]:
    """Identity names, one per line ('#' comments and blank lines skipped)."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line]


@dataclass(frozen=True)
class FaceScapeSplit:
    """Which FaceScape identities and expressions train and test.

    train_identities / test_identities: identity folder names; train_expressions: FaceScape
    numbers. Scans of identities in neither list are left out; the other expressions of the
    training identities are held out of training (``held_out_expression``).
    """

    name: str
    train_identities: tuple[str, ...]
    test_identities: tuple[str, ...]
    train_expressions: tuple[int, ...]

    @property
    def test_expressions(self) -> tuple[str, ...]:
        """The expression names held out of training, in FaceScape order."""
        return tuple(name for number, name in FACESCAPE_EXPRESSIONS.items() if number not in self.train_expressions)


def paper_split() -> FaceScapeSplit:
    """The ImFace authors' split: 355 training identities x 15 expressions, 10 test identities."""
    return FaceScapeSplit(
        "paper", tuple(_read_id_list(DATA_DIR / "paper_train_identities.txt")),
        tuple(_read_id_list(DATA_DIR / "paper_test_identities.txt")), PAPER_TRAIN_EXPRESSIONS,
    )


def detect_tu_topology(mesh_path: str | os.PathLike) -> TuTopology:
    """The TU topology of the mesh file at ``mesh_path`` (by its vertex count, in file order)."""
    return tu_topology(len(read_mesh(mesh_path).vertices), mesh_path)
