"""FaceScape's 20 expressions as ICT-FaceKit (ARKit) shape weights at full intensity.

The weights are the linear part of each expression; the generator adds the non-linear,
person-dependent part of the same recipe on top (:mod:`imface.builtin.expressions`): the jaw
hinge, eyelid closure about each eyeball, lip bending and pucker, cheek inflation, muscle
pulls and bulges, folds and wrinkles. Where both would do the same thing, the linear shape
carries part of it and the generator the rest (:data:`JAW_ARTICULATION`,
:data:`CHEEK_INFLATION`): ``jawOpen`` at 0.5 plus half the hinge rotation opens the mouth as
far as the hinge alone does on the BFM. Eyes close by the generator only (``eyeBlink`` moves
the lid along a straight line, which cuts through the eyeball of a person whose eye differs
from ICT's generic one). ``_L`` is the subject's left (+x). The table is written out in
``docs/builtin-data.md``.
"""
from __future__ import annotations

_BOTH = ("_L", "_R")


def _pair(name: str, weight: float) -> dict[str, float]:
    return {name + side: weight for side in _BOTH}


#: expression -> {ARKit shape: weight}
ARKIT_RECIPES: dict[str, dict[str, float]] = {
    "neutral": {},
    "smile": {**_pair("mouthSmile", 0.7), **_pair("cheekSquint", 0.5)},
    "mouth_stretch": {"jawOpen": 0.5, **_pair("mouthStretch", 0.5), **_pair("mouthLowerDown", 0.3)},
    "anger": {**_pair("browDown", 0.8), **_pair("noseSneer", 0.4), **_pair("mouthPress", 0.5),
              **_pair("eyeSquint", 0.3)},
    "jaw_left": {"jawLeft": 0.5, "jawOpen": 0.05},
    "jaw_right": {"jawRight": 0.5, "jawOpen": 0.05},
    "jaw_forward": {"jawForward": 0.6},
    "mouth_left": {"mouthLeft": 0.7},
    "mouth_right": {"mouthRight": 0.7},
    "dimpler": {**_pair("mouthDimple", 0.8)},
    "chin_raiser": {"mouthShrugLower": 0.8, "mouthShrugUpper": 0.3},
    "lip_puckerer": {"mouthPucker": 0.8},
    "lip_funneler": {"mouthFunnel": 0.8, "jawOpen": 0.1},
    "sadness": {**_pair("mouthFrown", 0.8), **_pair("browInnerUp", 0.6), "mouthShrugLower": 0.3},
    "lip_roll": {"mouthRollLower": 0.7, "mouthRollUpper": 0.7},
    "grin": {**_pair("mouthSmile", 0.9), **_pair("cheekSquint", 0.6), **_pair("mouthUpperUp", 0.4),
             **_pair("mouthLowerDown", 0.4), "jawOpen": 0.15, **_pair("mouthStretch", 0.2)},
    "cheek_blowing": {**_pair("cheekPuff", 0.6), "mouthPucker": 0.2},
    "eye_closed": {**_pair("eyeSquint", 0.3), **_pair("cheekSquint", 0.2)},
    "brow_raiser": {**_pair("browInnerUp", 0.8), **_pair("browOuterUp", 0.8), **_pair("eyeWide", 0.3)},
    "brow_lower": {**_pair("browDown", 0.9), **_pair("eyeSquint", 0.2)},
}
#: Share of a recipe's jaw rotation and shift that the generator's hinge adds to ICT's jaw shapes.
JAW_ARTICULATION = 0.5
#: Shapes the jaw bone moves: their motion is carried rigidly, outside the soft tissue's compliance
#: and muscle relief (which would otherwise crumple a 30 mm jaw drop).
JAW_SHAPES = frozenset({"jawOpen", "jawLeft", "jawRight", "jawForward"})
#: Share of a recipe's cheek inflation that the generator adds to ``cheekPuff``.
CHEEK_INFLATION = 0.5
#: Each shape's weight varies per scan by this factor's range (left and right on their own).
STYLE_RANGE = (0.8, 1.2)
