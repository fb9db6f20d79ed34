"""FaceScape's 20 expressions as ICT-FaceKit (ARKit) shape weights."""
from __future__ import annotations

from imface.builtin.expressions import EXPRESSIONS
from imface.builtin.ict_expressions import ARKIT_RECIPES, CHEEK_INFLATION, JAW_ARTICULATION, JAW_SHAPES, STYLE_RANGE
from tests.builtin.ict_standin import EXPRESSION_NAMES


def test_every_facescape_expression_has_a_recipe_of_ict_shapes():
    assert set(ARKIT_RECIPES) == set(EXPRESSIONS)
    used = {name for recipe in ARKIT_RECIPES.values() for name in recipe}
    assert used <= set(EXPRESSION_NAMES)  # ICT-FaceKit's 53 names (vertex_indices.json)
    assert ARKIT_RECIPES["neutral"] == {}
    assert all(ARKIT_RECIPES[e] for e in EXPRESSIONS if e != "neutral")


def test_weights_lie_in_zero_to_one():
    for expression, recipe in ARKIT_RECIPES.items():
        assert all(0.0 < w <= 1.0 for w in recipe.values()), expression
    lo, hi = STYLE_RANGE
    assert 0.0 < lo < 1.0 < hi
    assert 0.0 < JAW_ARTICULATION <= 1.0 and 0.0 < CHEEK_INFLATION <= 1.0


def test_jaw_shapes_are_used_and_are_ict_shapes():
    used = {name for recipe in ARKIT_RECIPES.values() for name in recipe}
    assert JAW_SHAPES <= used
    assert JAW_SHAPES == {n for n in EXPRESSION_NAMES if n.startswith("jaw")}


def test_sides_are_symmetric():
    for expression, recipe in ARKIT_RECIPES.items():
        for name, weight in recipe.items():
            for side, other in (("_L", "_R"), ("_R", "_L")):
                if name.endswith(side):
                    assert recipe.get(name[:-2] + other) == weight, (expression, name)


def test_eyes_close_by_the_generator_only():
    # eyeBlink moves the lid along a straight line through the eyeball of a person whose eye differs
    # from ICT's generic one; the generator closes the eyes about each eyeball instead.
    assert not any(name.startswith("eyeBlink") for recipe in ARKIT_RECIPES.values() for name in recipe)
    assert ARKIT_RECIPES["jaw_left"]["jawLeft"] > 0 and ARKIT_RECIPES["jaw_right"]["jawRight"] > 0
