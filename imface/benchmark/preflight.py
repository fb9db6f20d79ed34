"""``imface benchmark``'s pre-flight: before any training, check what every later stage needs.

At the paper's scale a benchmark trains for days before it builds the baselines, fits the test
scans and scores them, so whatever would stop those stages must be found first. The checks read
the manifest, file headers and a few meshes, and build each variant's network once on the CPU to
count its parameters; the first problem stops the run with one line naming the file or folder
(an ImfaceError). In order:

1. the test split is not empty and every test scan's folder is complete (fits and scores read it);
2. every training scan has a ``registered.ply`` (the baselines are built from them), all in one
   topology: every PLY header's vertex and face counts, and the triangles of up to
   ``TOPOLOGY_SAMPLES`` meshes spread over the split;
3. the validation split (:mod:`imface.benchmark.validation`) has its identities and scans;
4. the baselines can be built with the configured ranks, from all training identities and
   without the validation ones, within this machine's memory;
5. the disk where the benchmark folder goes has room for what the run writes (:func:`planned_bytes`);
6. the device resolves and computes;
7. headless rendering works (the figures need it).

:func:`dry_run_config` is the small config that ``imface benchmark --dry-run`` runs every stage with.
"""
from __future__ import annotations

import copy
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from imface.benchmark.curves import curve_seeds, curve_steps
from imface.benchmark.methods import variant_experiment
from imface.benchmark.validation import validation_identities, validation_scans
from imface.config.benchmark import BenchmarkConfig
from imface.contracts.dataset import MESH_NAME, META_NAME, POINT_FILES, REGISTERED_NAME, Manifest, read_manifest
from imface.devices import resolve_device
from imface.errors import ImfaceError
from imface.frame import CANONICAL_LANDMARKS_MM, MM_PER_UNIT
from imface.io.mesh import read_mesh
from imface.model import ImFace
from imface.ops.render import render_mesh

#: Registered meshes whose triangles are compared in full (the rest by their PLY header's counts).
TOPOLOGY_SAMPLES = 8
#: What a test scan's folder must hold: fits read the samples, scores and baseline fits the mesh.
TEST_SCAN_FILES = (META_NAME, MESH_NAME, *(f"{stem}.npy" for stem in POINT_FILES))

# Disk estimates (bytes). A checkpoint is float32 weights, code tables included; resume.pt adds
# Adam's two moments once per run. A fitted ImFace mesh at marching-cubes resolution R has about
# 3 (R - 1)^2 vertices: marching cubes on the signed distance of a processed built-in face gave
# 2.81 (R - 1)^2 at R = 48 and 2.87 (R - 1)^2 at R = 96, with two triangles per vertex. A binary
# PLY costs 12 bytes a vertex and 13 a triangle.
WEIGHT_BYTES_PER_PARAMETER = 4
RESUME_BYTES_PER_PARAMETER = 8
LOG_BYTES_PER_STEP = 2_000  # losses.jsonl and TensorBoard scalars, about 20 figures a step
IMAGE_BYTES_PER_LOGGING = 400_000  # the SDF slice images of a few scans, every train.image_every_steps
PLY_BYTES_PER_VERTEX = 12 + 2 * 13
FIT_VERTICES_PER_CELL_SQUARED = 3.0
# Building the baselines holds the S registered meshes as float32 and float64 copies, and the
# thin SVD of the (S, 3V) float64 matrix needs about four more of its size (LAPACK's workspace).
BASELINE_MEMORY_COPIES = 5.5

# --dry-run: every stage and variant, one seed, a few steps, one or two test scans.
DRY_RUN_STEPS = 4
DRY_RUN_FIT_STEPS = 3
DRY_RUN_TEST_SCANS = 2  # two, so that the correspondence stage runs too
DRY_RUN_EVAL_POINTS = 20_000
DRY_RUN_EVERY = 2  # the training's periodic checkpoints, images and curve probes, each run at least once


@dataclass
class Preflight:
    """What the pre-flight found: the counts behind its progress line and the planned disk use."""

    train_scans: int
    test_split: int  # scans in the test split
    test_scans: int  # of them fitted and scored
    registered_vertices: int
    validation_identities: list[str]
    parameters: dict[str, int]  # variant -> parameters, code tables included
    planned: dict[str, int]  # what -> bytes the run writes (estimates)
    free_bytes: int
    device: str
    seconds: float

    @property
    def planned_bytes(self) -> int:
        return sum(self.planned.values())

    def summary(self) -> str:
        return (f"{self.train_scans} training scans with registered meshes ({self.registered_vertices:,} vertices), "
                f"{self.test_scans} of {self.test_split} test scans, validation identities "
                f"{', '.join(self.validation_identities)}; about {_size(self.planned_bytes)} to write, "
                f"{_size(self.free_bytes)} free; device {self.device}; checked in {self.seconds:.1f} s")


def check_benchmark(data_dir: str | Path, bench_dir: str | Path, config: BenchmarkConfig,
                    device: str = "auto") -> Preflight:
    """Check everything the stages of :func:`imface.benchmark.run_benchmark` need (module docstring).

    Raises an :class:`ImfaceError` naming the first problem; writes nothing.
    """
    started = time.perf_counter()
    config.validate()
    manifest = read_manifest(data_dir)
    test_split = _check_test_split(manifest)
    test_scans = test_split if config.test_scans <= 0 else min(config.test_scans, test_split)
    vertices = _check_registered(manifest)
    identities = _check_validation(manifest, config)
    _check_baselines(manifest, config, identities, vertices)
    parameters = parameter_counts(config, manifest)
    planned = planned_bytes(config, parameters, test_scans, len(manifest.train), vertices)
    free = _check_disk(Path(bench_dir), planned)
    device_name = _check_device(device)
    _check_rendering()
    return Preflight(len(manifest.train), test_split, test_scans, vertices, identities, parameters, planned, free,
                     device_name, time.perf_counter() - started)


def _check_test_split(manifest: Manifest) -> int:
    if not manifest.test:
        raise ImfaceError(manifest.root, "the test split is empty: preprocess with --test-identities >= 1 "
                                         "(or --split-from); the benchmark fits and scores held-out people")
    for name in manifest.test:
        folder = manifest.folder(name)
        for file in TEST_SCAN_FILES:
            if not (folder / file).is_file():
                raise ImfaceError(folder / file, f"missing: test scan {name} is incomplete (fits and scores read "
                                                 "it); run imface preprocess again")
    return len(manifest.test)


def _check_registered(manifest: Manifest) -> int:
    """The vertex count of the training scans' registered meshes, all checked to share one topology."""
    names = list(manifest.train)
    if not names:
        raise ImfaceError(manifest.root, "the training split is empty")
    paths = [manifest.folder(name) / REGISTERED_NAME for name in names]
    missing = [path for path in paths if not path.is_file()]
    if missing:
        raise ImfaceError(missing[0], f"missing, as for {len(missing)} of {len(paths)} training scans: the "
                                      "baselines need a registered mesh per training scan, all in one topology "
                                      "(the facescape and builtin layouts record them; a list needs a registered "
                                      "column)")
    reference = _ply_counts(paths[0])
    for path in paths[1:]:  # one header read per scan: cheap even for thousands of scans
        counts = _ply_counts(path)
        if counts != reference:
            raise ImfaceError(path, f"{counts[0]:,} vertices and {counts[1]:,} triangles, but {paths[0]} has "
                                    f"{reference[0]:,} and {reference[1]:,}: the baselines need one topology")
    faces = read_mesh(paths[0]).faces
    picks = {round(i * (len(paths) - 1) / max(1, TOPOLOGY_SAMPLES - 1)) for i in range(TOPOLOGY_SAMPLES)}
    for index in sorted(picks - {0}):
        if not np.array_equal(read_mesh(paths[index]).faces, faces):
            raise ImfaceError(paths[index], f"its triangles differ from those of {paths[0]}: the baselines need "
                                            "registered meshes in one topology")
    return reference[0]


def _ply_counts(path: Path) -> tuple[int, int]:
    """(vertices, faces) of a mesh from its PLY header; from the whole mesh when that is not a PLY header."""
    with open(path, "rb") as handle:
        head = handle.read(8192)
    end = head.find(b"end_header")
    if head.startswith(b"ply") and end > 0:
        counts = {}
        for line in head[:end].decode("latin-1").splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == "element" and parts[2].isdigit():
                counts[parts[1]] = int(parts[2])
        if "vertex" in counts and "face" in counts:
            return counts["vertex"], counts["face"]
    mesh = read_mesh(path)
    return len(mesh.vertices), len(mesh.faces)


def _check_validation(manifest: Manifest, config: BenchmarkConfig) -> list[str]:
    identities = validation_identities(manifest, config.validation_identities)
    if not validation_scans(manifest, identities, config.validation_scans):
        raise ImfaceError(manifest.root, f"the validation identities {', '.join(identities)} have no training scans")
    return identities


def _check_baselines(manifest: Manifest, config: BenchmarkConfig, validation: list[str], vertices: int) -> None:
    """What :func:`imface.baselines.build_baselines` needs beyond registered meshes: the FLAME-like
    model's neutral and expression scans, with and without the validation identities, and memory."""
    for excluded in (set(), set(validation)):
        scans = [manifest.scan(name) for name in manifest.train if manifest.scan(name).identity not in excluded]
        with_neutral = {scan.identity for scan in scans if scan.neutral}
        expressive = sum(1 for scan in scans if not scan.neutral and scan.identity in with_neutral)
        where = "the training split" + (" without the validation identities" if excluded else "")
        if len(with_neutral) < 2 or expressive < 1:
            raise ImfaceError(manifest.root, f"{where} has neutral scans of {len(with_neutral)} identities and "
                                             f"{expressive} expression scans of them: the FLAME-like baseline "
                                             "needs neutral scans of 2 identities and expression scans of them")
    needed = BASELINE_MEMORY_COPIES * len(manifest.train) * 3 * vertices * 8
    total = _physical_memory()
    if total and needed > total:
        raise ImfaceError(manifest.root, f"building the baselines from {len(manifest.train)} registered meshes of "
                                         f"{vertices:,} vertices needs about {_size(needed)} of memory; this machine "
                                         f"has {_size(total)}")


def _physical_memory() -> int:
    """Bytes of RAM (0 where the system does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, OSError, ValueError):
        return 0


def parameter_counts(config: BenchmarkConfig, manifest: Manifest) -> dict[str, int]:
    """Parameters of each variant's model on this dataset, code tables included (every training
    scan counted as an expression code with the per-scan embedding: an upper bound)."""
    train = [manifest.scan(name) for name in manifest.train]
    identities = len({scan.identity for scan in train})
    template = torch.tensor(CANONICAL_LANDMARKS_MM / MM_PER_UNIT, dtype=torch.float32)
    counts = {}
    with torch.random.fork_rng(devices=[]):  # building a model draws weights: leave the global RNG as it was
        for variant in config.variants:
            model = variant_experiment(config, variant, config.seeds[0]).model
            network = sum(p.numel() for p in ImFace(model, 1, 1, template).parameters())
            network -= model.id_code_dim + model.exp_code_dim  # the one-row code tables
            rows = len(train) if model.expression_embedding == "per_scan" else len({s.expression for s in train})
            counts[variant] = int(network + identities * model.id_code_dim + rows * model.exp_code_dim)
    return counts


def planned_bytes(config: BenchmarkConfig, parameters: dict[str, int], test_scans: int, train_scans: int,
                  vertices: int) -> dict[str, int]:
    """Bytes a benchmark writes, by kind (estimates; see the constants above).

    parameters: variant -> parameters (:func:`parameter_counts`); test_scans: scans fitted and
    scored; train_scans: registered training meshes; vertices: their vertex count.
    """
    runs = 0
    for variant, count in parameters.items():
        train = variant_experiment(config, variant, config.seeds[0]).train
        every, steps = train.checkpoint_every_steps, config.train_steps
        kept = set(curve_steps(config)) | (set(range(every, steps + 1, every)) if every > 0 else set())
        images = steps // train.image_every_steps if train.image_every_steps > 0 else 0
        runs += len(config.seeds) * (len(kept) * WEIGHT_BYTES_PER_PARAMETER * count + RESUME_BYTES_PER_PARAMETER * count
                                     + steps * LOG_BYTES_PER_STEP + images * IMAGE_BYTES_PER_LOGGING)
    fit_mesh = FIT_VERTICES_PER_CELL_SQUARED * (config.fit_resolution - 1) ** 2 * PLY_BYTES_PER_VERTEX
    fitted = len(config.seeds) + len(curve_seeds(config)) * (len(curve_steps(config)) - 1)
    models = _baseline_components(config, train_scans, vertices)
    fits_per_model = test_scans + len(config.regularisation_grid) * config.validation_scans
    return {
        "checkpoints and logs": int(runs),
        "ImFace fits": int(len(parameters) * fitted * test_scans * fit_mesh),
        # built twice: from every training identity, and without the validation identities
        "baselines": int(2 * sum(components * 4 + 48 * size for components, size in models)),
        "baseline fits": int(len(models) * fits_per_model * 2 * vertices * PLY_BYTES_PER_VERTEX),
    }


def _baseline_components(config: BenchmarkConfig, train_scans: int, vertices: int) -> list[tuple[int, int]]:
    """(float32 values, vertices) of each baseline model build_baselines writes."""
    block = 3 * vertices
    models = [((size + 1) * block, vertices) for size in config.pca_sizes if size <= train_scans - 1]
    models.append(((config.bilinear_ranks[0] * config.bilinear_ranks[1] + 1) * block, vertices))
    flame = sum(config.flame_ranks) + 2  # mean, components and the skinning weights
    models.append((flame * block, vertices))
    if 0 < config.paper_resolution < vertices:
        models.append((flame * 3 * config.paper_resolution, config.paper_resolution))
    return models


def _check_disk(bench_dir: Path, planned: dict[str, int]) -> int:
    """Free bytes where ``bench_dir`` goes, checked against the planned bytes not yet written there."""
    existing = bench_dir.resolve()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    written = sum(p.stat().st_size for p in bench_dir.rglob("*") if p.is_file()) if bench_dir.is_dir() else 0
    needed = sum(planned.values()) - written
    if needed > free:
        parts = ", ".join(f"{what} {_size(size)}" for what, size in planned.items())
        raise ImfaceError(existing, f"about {_size(needed)} more to write ({parts}) but {_size(free)} free: free "
                                    "some space or give another --out")
    return free


def _check_device(device: str) -> str:
    torch_device = resolve_device(device)
    try:
        torch.ones(4, device=torch_device).sum().item()
    except RuntimeError as err:
        raise ImfaceError(None, f"device {torch_device} does not compute: {err}") from None
    if torch_device.type == "cuda":
        properties = torch.cuda.get_device_properties(torch_device)
        return f"{torch_device} ({properties.name}, {_size(properties.total_memory)})"
    return str(torch_device)


def _check_rendering() -> None:
    triangle = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    try:
        render_mesh(triangle, np.array([[0, 1, 2]]), size=(8, 8), supersample=1)
    except ImfaceError as err:
        raise ImfaceError(None, f"the benchmark's figures need headless rendering, which fails here: {err}") from None


def dry_run_config(config: BenchmarkConfig, test_split: int) -> BenchmarkConfig:
    """``config`` made small for ``--dry-run``: every variant and stage with the same model, batch,
    fit resolution and baseline sizes, but the first seed, ``DRY_RUN_STEPS`` training steps (the
    periodic checkpoints, images and curve probes every ``DRY_RUN_EVERY`` steps, so each runs),
    ``DRY_RUN_TEST_SCANS`` test scans (at most the ``test_split`` there are), ``DRY_RUN_FIT_STEPS``
    fit steps, one validation identity, scan and regularisation, and fewer scoring points."""
    dry = copy.deepcopy(config)
    dry.seeds = config.seeds[:1]
    dry.train_steps = DRY_RUN_STEPS
    dry.test_scans = max(1, min(DRY_RUN_TEST_SCANS, test_split))
    dry.fit_steps = min(config.fit_steps, DRY_RUN_FIT_STEPS)
    dry.validation_identities, dry.validation_scans = 1, 1
    dry.regularisation_grid = config.regularisation_grid[:1]
    dry.eval_points = min(config.eval_points, DRY_RUN_EVAL_POINTS)
    dry.figure_scans = min(config.figure_scans, dry.test_scans)
    dry.correspondence_pairs = 1
    train = variant_experiment(config, config.variants[0], config.seeds[0]).train
    periodic = {"checkpoint_every_steps": train.checkpoint_every_steps, "image_every_steps": train.image_every_steps,
                "curve_every_steps": train.curve_every_steps}
    dry.train_overrides = [*config.train_overrides,
                           *(f"train.{name}={DRY_RUN_EVERY}" for name, every in periodic.items() if every > 0)]
    dry.validate()
    return dry


def _size(count: float) -> str:
    """Bytes in words: 1.2 GB, 340 MB (decimal units, as disks are sold)."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{int(count)} B"
