import pytest
import torch

from imface.config import LossConfig, ModelConfig
from imface.frame import CANONICAL_LANDMARKS_MM, FIVE_LANDMARK_IDS, MM_PER_UNIT
from imface.fields.global_field import GlobalField
from imface.fields.reference import loop_reference_model
from imface.losses import LOSS_KEYS, compute_losses
from imface.errors import ImfaceError
from imface.model import ImFace

TEMPLATE = torch.tensor(CANONICAL_LANDMARKS_MM / MM_PER_UNIT, dtype=torch.float32)
SMALL = dict(id_code_dim=8, exp_code_dim=8, local_hidden=16, hyper_hidden=16, fusion_hidden=16,
             landmark_hidden=32, positional_frequencies=2)
ABLATIONS = {
    "full": {},
    "no-dist": {"deformation": "joint"},
    "no-blend": {"blend": False},
    "no-extend": {"expression_embedding": "per_name"},
    "translation": {"warp": "translation"},
}


def _model(**overrides) -> ImFace:
    torch.manual_seed(0)
    return ImFace(ModelConfig(**{**SMALL, **overrides}), 3, 6, TEMPLATE)


def _batch(B=4, Ns=16, Nq=16, neutral=None, five_only=False):
    g = torch.Generator().manual_seed(1)
    landmarks = TEMPLATE[None].repeat(B, 1, 1) + 0.01 * torch.randn(B, 68, 3, generator=g)
    mask = torch.ones(B, 68, dtype=torch.bool)
    if five_only:
        mask[:] = False
        mask[:, list(FIVE_LANDMARK_IDS)] = True
        landmarks = landmarks * mask[..., None]
    return {
        "surface_points": torch.randn(B, Ns, 3, generator=g) * 0.3,
        "surface_normals": torch.nn.functional.normalize(torch.randn(B, Ns, 3, generator=g), dim=-1),
        "space_points": torch.randn(B, Nq, 3, generator=g) * 0.3,
        "space_sdf": torch.randn(B, Nq, generator=g) * 0.1,
        "space_grad": torch.nn.functional.normalize(torch.randn(B, Nq, 3, generator=g), dim=-1),
        "landmarks": landmarks,
        "landmarks_mask": mask,
        "neutral_landmarks": TEMPLATE[None].repeat(B, 1, 1),
        "neutral_landmarks_mask": torch.ones(B, 68, dtype=torch.bool),
        "identity_index": torch.arange(B) % 3,
        "expression_index": torch.arange(B) % 6,
        "neutral": torch.tensor([True, False] * (B // 2)) if neutral is None else neutral,
    }


def test_evaluate_shapes_and_composition():
    model = _model()
    points = torch.rand(2, 20, 3) - 0.5
    ids, exps = model.identity_codes.weight[:2], model.expression_codes.weight[:2]
    neutral = torch.tensor([True, False])
    out = model.evaluate(points, ids, exps, neutral)
    assert out.sdf.shape == (2, 20) and out.template_points.shape == (2, 20, 3)
    assert out.landmarks.shape == (2, 5, 3) and out.expression_weights.shape == (2, 20, 5)
    assert torch.allclose(out.sdf, out.template_sdf + out.residual)
    assert torch.equal(model.sdf(points, ids, exps, neutral), out.sdf)
    assert out.gradient is None and out.canonical_gradient is None
    # neutral scans: E is the identity and l = l'
    assert torch.equal(out.canonical_points[0], points[0])
    assert torch.equal(out.landmarks[0], out.canonical_landmarks[0])
    assert not torch.equal(out.landmarks[1], out.canonical_landmarks[1])


def test_initialisation_codes_and_landmarks():
    model = ImFace(ModelConfig(), 50, 40, TEMPLATE)
    assert model.identity_codes.weight.shape == (50, 128)
    assert 0.008 < model.expression_codes.weight.std().item() < 0.012
    ids, exps = model.identity_codes.weight[:4], model.expression_codes.weight[:4]
    observed, canonical = model.predict_landmarks(ids, exps, torch.zeros(4, dtype=torch.bool))
    five = TEMPLATE[list(FIVE_LANDMARK_IDS)]
    assert (observed - five).abs().max() < 0.02 and (canonical - five).abs().max() < 0.02


def test_gradients_match_finite_differences():
    model = _model().double()
    points = (torch.rand(2, 6, 3, dtype=torch.float64) - 0.5)
    ids = model.identity_codes.weight[:2].detach()
    exps = model.expression_codes.weight[:2].detach()
    neutral = torch.tensor([True, False])
    out = model.evaluate(points, ids, exps, neutral, with_gradients=True)
    eps = 1e-6
    for axis in range(3):
        step = torch.zeros(3, dtype=torch.float64)
        step[axis] = eps
        plus = model.sdf(points + step, ids, exps, neutral)
        minus = model.sdf(points - step, ids, exps, neutral)
        assert torch.allclose(out.gradient[..., axis], (plus - minus) / (2 * eps), atol=1e-5)
    # on a neutral scan p' = p, so the canonical gradient is d s0 / d p
    with torch.enable_grad():
        p = points.clone().requires_grad_(True)
        s0 = model.evaluate(p, ids, exps, neutral).template_sdf
        (direct,) = torch.autograd.grad(s0[0].sum(), p)
    assert torch.allclose(out.canonical_gradient[0], direct[0], atol=1e-10)


def test_batched_model_matches_loop_reference_model():
    model = _model()
    reference = loop_reference_model(model)
    points = torch.rand(3, 12, 3) - 0.5
    ids, exps = model.identity_codes.weight[:3], model.expression_codes.weight[:3]
    neutral = torch.tensor([False, True, False])
    fast = model.evaluate(points, ids, exps, neutral, with_gradients=True)
    slow = reference.evaluate(points, ids, exps, neutral, with_gradients=True)
    assert torch.allclose(fast.sdf, slow.sdf, atol=1e-5)
    assert torch.allclose(fast.gradient, slow.gradient, atol=1e-4)
    assert torch.allclose(fast.canonical_gradient, slow.canonical_gradient, atol=1e-4)


@pytest.mark.parametrize("name", list(ABLATIONS))
def test_each_variant_trains_and_every_parameter_gets_a_gradient_on_all_neutral_batches(name):
    model = _model(**ABLATIONS[name])
    for neutral in (None, torch.ones(4, dtype=torch.bool)):
        model.zero_grad(set_to_none=True)
        batch = _batch(neutral=neutral, five_only=neutral is None)
        outputs = model(batch)
        losses = compute_losses(outputs, batch, LossConfig(), model.config)
        assert torch.isfinite(losses["total"])
        expected = set(LOSS_KEYS) | {"total"}
        if name == "no-dist":
            expected.discard("eikonal_canonical")
        assert set(losses) == expected
        losses["total"].backward()
        missing = [n for n, p in model.named_parameters() if p.grad is None]
        assert not missing, missing
        assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def _generated_params(model: ImFace) -> int:
    fields = [model.expression_field.field, model.identity_field.field]
    return sum(f.hyper.num_fields * f.hyper.num_params for f in fields)


def _hyper_params(model: ImFace) -> int:
    fields = [model.expression_field.field, model.identity_field.field]
    return sum(p.numel() for f in fields for p in f.hyper.parameters())


def test_no_blend_is_within_ten_percent_of_the_full_model():
    full = ImFace(ModelConfig(), 10, 10, TEMPLATE)
    global_ = ImFace(ModelConfig(blend=False), 10, 10, TEMPLATE)
    assert isinstance(global_.template_field.field, GlobalField)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    for measure in (count, _generated_params, _hyper_params):
        assert abs(measure(global_) - measure(full)) <= 0.1 * measure(full), measure


def test_default_model_size_is_hypernetwork_dominated():
    model = ImFace(ModelConfig(), 1, 1, TEMPLATE)
    total = sum(p.numel() for p in model.parameters())
    encoded = ImFace(ModelConfig(positional_frequencies=6), 1, 1, TEMPLATE)  # the paper's gamma on
    assert 2e6 < sum(p.numel() for p in encoded.parameters()) < 4e6
    assert 1.5e6 < total < sum(p.numel() for p in encoded.parameters())  # gamma off (default): a narrower first layer
    assert _hyper_params(model) > 0.85 * total


def test_a_template_without_68_landmarks_is_refused():
    with pytest.raises(ValueError):
        ImFace(ModelConfig(**SMALL), 1, 1, torch.zeros(5, 3))


def test_from_state_round_trips_and_refuses_a_foreign_state():
    model = _model()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    loaded = ImFace.from_state(model.config, state, "weights.safetensors")
    assert loaded.expression_codes.num_embeddings == 6 and not loaded.training
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in state.items())
    assert not any(p.requires_grad for p in loaded.parameters())
    del state["expression_codes.weight"]
    with pytest.raises(ImfaceError, match="weights.safetensors.*not an ImFace weights file"):
        ImFace.from_state(model.config, state, "weights.safetensors")
