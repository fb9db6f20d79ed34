"""The command line against docs/cli.md: every verb's options are in its vocabulary table with
their defaults, ``--device`` is ``auto`` everywhere, no verb takes a positional argument, each
option name has one meaning, help at 80 columns shows every option name in full, and each
deprecated spelling still works and prints its note."""
from __future__ import annotations

import re
import shlex
import types
import typing
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from imface.cli import main
from imface.errors import ImfaceError

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
#: Hidden positional arguments that only carry an old spelling: (verb, parameter name).
HIDDEN_ARGUMENTS = {("check-data", "old_data")}
#: Verbs that load a model or train one: each takes --device.
DEVICE_VERBS = {"train", "fit", "extract", "correspond", "sample", "interpolate", "transfer", "benchmark", "view"}


def _commands() -> dict[str, typing.Any]:
    """Every verb's click command by its name ("data bfm" for a sub-verb); "imface" is the root."""
    if not main.app.registered_commands:
        main._register()
    found: dict[str, typing.Any] = {}

    def walk(command, path: tuple[str, ...]) -> None:
        found[" ".join(path) or "imface"] = command
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, (*path, name))

    walk(typer.main.get_command(main.app), ())
    return found


COMMANDS = _commands()
VERBS = sorted(name for name, command in COMMANDS.items() if not hasattr(command, "commands"))


def _options(command) -> list:
    return [p for p in command.params if p.param_type_name == "option" and not p.hidden and p.name != "help"]


def _cells(line: str) -> list[str]:
    cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
    return [cell.strip().replace("\\|", "|") for cell in cells]


def _table(heading: str) -> list[list[str]]:
    """The rows of the first table under ``## heading`` in docs/cli.md (header row left out)."""
    section = DOC.read_text().split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    return [_cells(line) for line in lines[2:]]


def _verb_list(cell: str) -> list[str]:
    return [re.sub(r"\s*\(.*\)", "", verb).strip() for verb in cell.split(",")]


VOCABULARY = {re.match(r"`(--[\w-]+)", row[0]).group(1): row for row in _table("Vocabulary")}


def _base_type(param) -> str:
    """The option's value type with Optional and List taken off: Path, int, str, float or bool."""
    annotation = param.type_descriptor.annotation
    while typing.get_origin(annotation) in (typing.Union, types.UnionType, list):
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    return annotation.__name__


def _documented_default(cell: str, verb: str) -> str:
    """The default cell's entry for ``verb``: ``verbs: value`` entries first, else the bare one."""
    bare = None
    for entry in (e.strip() for e in cell.split(";")):
        head, sep, value = entry.partition(": ")
        if sep and all(v in COMMANDS for v in _verb_list(head)):
            if verb in _verb_list(head):
                return value.strip()
        else:
            bare = entry
    assert bare is not None, f"no default for {verb} in {cell!r}"
    return bare


def _matches(documented: str, param) -> bool:
    if documented == "required":  # click-required, or checked by the verb (which says so in its help)
        return param.required or (param.default is None and "Required." in (param.help or ""))
    if param.required:
        return False
    if documented in ("on", "off"):
        return param.is_flag and param.default == (documented == "on")
    if documented == "none":
        return param.default == [] or param.default == ()
    literal = re.fullmatch(r"`([^`]*)`", documented)
    if literal is None:  # words: what the verb takes when the option is not given
        return param.default is None
    value = literal.group(1)
    try:
        return float(value) == float(param.default)
    except (TypeError, ValueError):
        return value == str(param.default)


def test_every_option_is_in_the_vocabulary_table():
    in_app = {(p.opts[0], verb) for verb, command in COMMANDS.items() for p in _options(command)}
    in_doc = {(name, verb) for name, row in VOCABULARY.items() for verb in _verb_list(row[3])}
    assert in_app - in_doc == set(), "options missing from docs/cli.md"
    assert in_doc - in_app == set(), "docs/cli.md lists options the verbs do not take"
    for verb, command in COMMANDS.items():
        for param in _options(command):
            assert VOCABULARY[param.opts[0]][0] == f"`{'/'.join(param.opts + param.secondary_opts)}`", verb


def test_defaults_are_the_documented_ones():
    wrong = []
    for verb, command in COMMANDS.items():
        for param in _options(command):
            documented = _documented_default(VOCABULARY[param.opts[0]][2], verb)
            if not _matches(documented, param):
                wrong.append(f"{verb} {param.opts[0]}: documented {documented!r}, default {param.default!r}")
    assert wrong == []


def test_device_defaults_to_auto_everywhere():
    with_device = {verb: p for verb, command in COMMANDS.items() for p in _options(command) if p.opts[0] == "--device"}
    assert set(with_device) == DEVICE_VERBS
    assert {verb: p.default for verb, p in with_device.items()} == {verb: "auto" for verb in DEVICE_VERBS}


def test_no_verb_takes_a_positional_argument():
    arguments = {(verb, p.name) for verb, command in COMMANDS.items() for p in command.params
                 if p.param_type_name == "argument"}
    assert arguments == HIDDEN_ARGUMENTS
    assert all(p.hidden for command in COMMANDS.values() for p in command.params if p.param_type_name == "argument")


def test_each_option_name_has_one_meaning():
    for verb, command in COMMANDS.items():
        for param in _options(command):
            meaning = VOCABULARY[param.opts[0]][1].rstrip("… ")
            assert (param.help or "").startswith(meaning), (verb, param.opts[0], param.help)
    kinds: dict[str, set] = {}
    for command in COMMANDS.values():
        for param in _options(command):
            kinds.setdefault(param.opts[0], set()).add((_base_type(param), param.is_flag))
    assert {name: kind for name, kind in kinds.items() if len(kind) > 1} == {}


@pytest.mark.parametrize("verb", ["imface", *VERBS])
def test_help_at_80_columns_shows_every_option_name(verb):
    args = [] if verb == "imface" else verb.split()
    result = CliRunner().invoke(main.app, [*args, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    for param in _options(COMMANDS[verb]):
        for name in param.opts + param.secondary_opts:
            assert re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", result.output), (verb, name)
    assert max(len(line) for line in result.output.splitlines()) <= 80
    assert "…" not in result.output


def _reached(*args, **kwargs):
    raise ImfaceError(None, f"reached {args!r} {kwargs!r}")


class Case(typing.NamedTuple):
    """A command line with an old spelling; stand-ins for the library it calls; the note's old
    and new spelling; what the library must be given (formatted with ``tmp``)."""

    command: str
    stand_ins: dict
    old: str
    new: str
    given: str = "reached"


_MODEL = types.SimpleNamespace(device="cpu", code_stats=None, identity_code=lambda name: 0,
                               expression_code=lambda name: (0, True))
_GENERATE = {"imface.pretrained.load_pretrained": lambda *a, **k: _MODEL,
             "imface.generate.resolve_face": lambda *a: None, "imface.generate.interpolate_faces": lambda *a: [],
             "imface.generate.transfer_face": lambda *a: None, "imface.generate.sample_faces": lambda *a, **k: [],
             "imface.generate.generate_meshes": _reached}
_CORRESPOND = {**_GENERATE, "imface.correspondence.load_fits": lambda *a, **k: [],
               "imface.correspondence.parse_pairs": lambda *a: [], "imface.correspondence.run_correspondence": _reached}
_GENERATED = "--model {tmp}/m --out {tmp}/o"

#: (verb, the old spelling as docs/cli.md writes it) -> its case.
CASES = {
    ("check-data", "`check-data DATA`"): Case(
        "check-data {tmp}/data", {"imface.preprocess.check.check_dataset": _reached}, "DATA (positional)",
        "--data DATA", "{tmp}/data"),
    ("train", "`--exp-dir DIR`"): Case(
        "train --data {tmp}/data --exp-dir {tmp}/exp", {"imface.training.trainer.train": _reached}, "--exp-dir",
        "--out", "{tmp}/exp"),
    ("train", "`--ablation A --ablation B`"): Case(
        "train --data {tmp}/data --out {tmp}/exp --ablation no-dist --ablation no-blend",
        {"imface.config.experiment.apply_ablations": _reached}, "repeating --ablation", "one --ablation",
        "['no-dist', 'no-blend']"),
    ("fit", "`--points N`"): Case(
        "fit --model {tmp}/m --data {tmp}/data --out {tmp}/f --points 77", {"imface.fitting.run.fit": _reached},
        "--points", "--surface-points", "'points': 77"),
    ("fit", "`--in DATASET` (a processed dataset)"): Case(
        "fit --model {tmp}/m --in {tmp}/dataset --out {tmp}/f", {"imface.fitting.run.fit": _reached},
        "--in DATASET (a processed dataset)", "--data DATASET", "{tmp}/dataset"),
    ("eval", "`--points N`"): Case(
        "eval --fits {tmp}/f --points 123", {"imface.eval.evaluate.evaluate_folder": _reached}, "--points",
        "--metric-points", "'num_points': 123"),
    ("eval", "`--sheet/--no-sheet`"): Case(
        "eval --fits {tmp}/f --no-sheet", {"imface.eval.evaluate.evaluate_folder": _reached}, "--no-sheet",
        "--no-preview"),
    ("export", "`--exp-dir DIR`"): Case(
        "export --exp-dir {tmp}/exp --out {tmp}/m", {"imface.pretrained.export_model": _reached}, "--exp-dir",
        "--model", "{tmp}/exp"),
    ("extract", "`--units U`"): Case(
        f"extract {_GENERATED} --identity 001 --units mm", _GENERATE, "--units", "--unit", "'units': 'mm'"),
    ("correspond", "`--render/--no-render`"): Case(
        "correspond --fits {tmp}/f --model {tmp}/m --out {tmp}/o --no-render", _CORRESPOND, "--no-render",
        "--no-preview", "'render': False"),
    ("sample", "`--neutral`"): Case(
        f"sample {_GENERATED} --neutral", {**_GENERATE, "imface.generate.sample_faces": _reached}, "--neutral",
        "--neutral-only", "'neutral': True"),
    ("sample", "`--units U`"): Case(f"sample {_GENERATED} --units mm", _GENERATE, "--units", "--unit", "'units': 'mm'"),
    ("interpolate", "`--steps N`"): Case(
        f"interpolate {_GENERATED} --from 001 --to 002 --steps 7",
        {**_GENERATE, "imface.generate.interpolate_faces": _reached}, "--steps", "--count", "(None, None, 7)"),
    ("interpolate", "`--units U`"): Case(
        f"interpolate {_GENERATED} --from 001 --to 002 --units mm", _GENERATE, "--units", "--unit", "'units': 'mm'"),
    ("transfer", "`--units U`"): Case(
        f"transfer {_GENERATED} --identity-from 001 --expression-from 002 --units mm", _GENERATE, "--units", "--unit",
        "'units': 'mm'"),
    ("benchmark", "`--exp-dir DIR`"): Case(
        "benchmark --data {tmp}/data --exp-dir {tmp}/b", {"imface.benchmark.run_benchmark": _reached}, "--exp-dir",
        "--out", "{tmp}/b"),
    ("baseline fit", "`--points N`"): Case(
        "baseline fit --model {tmp}/m --in {tmp}/a.ply --out {tmp}/f --points 500",
        {"imface.fitting.baseline.fit_baseline_inputs": _reached}, "--points", "--scan-points", "'points': 500"),
    ("preprocess", "`--test-expressions ''`"): Case(
        "preprocess --in {tmp}/raw --out {tmp}/data --test-expressions ''",
        {"imface.preprocess.run.preprocess_dataset": _reached}, "--test-expressions ''", "--test-expressions none",
        "test_expressions=()"),
    ("baseline build", "`--pca-sizes ''`"): Case(
        "baseline build --data {tmp}/data --out {tmp}/b --pca-sizes ''", {"imface.baselines.build_baselines": _reached},
        "--pca-sizes ''", "--pca-sizes none", "'pca_sizes': ()"),
}


def test_every_deprecated_spelling_has_a_case():
    assert {(row[0], row[1]) for row in _table("Deprecated spellings")} == set(CASES)


@pytest.mark.parametrize("case", sorted(CASES), ids=lambda case: f"{case[0]} {case[1]}")
def test_deprecated_spelling_still_works_and_prints_its_note(case, tmp_path, monkeypatch):
    case = CASES[case]
    (tmp_path / "dataset").mkdir()
    (tmp_path / "dataset" / "manifest.json").write_text("{}")  # enough to be told apart from raw input
    for target, stand_in in case.stand_ins.items():
        monkeypatch.setattr(target, stand_in)
    result = CliRunner().invoke(main.app, shlex.split(case.command.format(tmp=tmp_path)))
    notes = [line for line in result.stderr.splitlines() if line.startswith("imface: ")]
    assert len(notes) == 1 and notes[0].startswith(f"imface: {case.old} is deprecated; use {case.new}"), result.stderr
    assert isinstance(result.exception, ImfaceError) and "reached" in str(result.exception), result.output
    assert case.given.format(tmp=tmp_path) in str(result.exception)
