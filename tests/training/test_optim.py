"""RowAdam: Adam on the code rows present in a step, the other rows untouched."""
from __future__ import annotations

import pytest
import torch

from imface.training.optim import RowAdam


def _grads(steps: int, rows: int, dim: int, present: list[list[int]]) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    out = []
    for step in range(steps):
        grad = torch.zeros(rows, dim)
        grad[present[step]] = torch.randn(len(present[step]), dim, generator=generator)
        out.append(grad)
    return out


def test_absent_rows_keep_their_value_and_moments():
    table = torch.nn.Parameter(torch.randn(4, 3))
    optimizer = RowAdam([table], lr=0.1)
    present = [[0, 1], [1], [0, 2], [1]]
    for grad in _grads(4, 4, 3, present):
        before = table.detach().clone()
        table.grad = grad
        optimizer.step()
        moved = (table.detach() != before).any(dim=1)
        assert moved.tolist() == [bool(g.abs().sum()) for g in grad]
    state = optimizer.state[table]
    assert state["steps"].tolist() == [2, 3, 1, 0]
    assert torch.all(state["exp_avg"][3] == 0) and torch.all(state["exp_avg_sq"][3] == 0)


def test_a_row_present_in_every_step_follows_plain_adam():
    start = torch.randn(3, 5)
    ours, reference = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start[:1].clone())
    row_adam, adam = RowAdam([ours], lr=0.05), torch.optim.Adam([reference], lr=0.05)
    for grad in _grads(6, 3, 5, [[0, 2]] * 3 + [[0]] * 3):
        ours.grad, reference.grad = grad, grad[:1].clone()
        row_adam.step()
        adam.step()
    # the same update up to float32 rounding (Adam orders its arithmetic differently)
    torch.testing.assert_close(ours.detach()[:1], reference.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours.detach()[1], start[1])  # never present, never moved


def test_plain_adam_moves_absent_rows_which_row_adam_does_not():
    # The defect RowAdam fixes: Adam keeps pushing a row on its stale first moment.
    start = torch.randn(2, 4)
    plain, lazy = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    adam, row_adam = torch.optim.Adam([plain], lr=0.1), RowAdam([lazy], lr=0.1)
    for grad in _grads(5, 2, 4, [[0, 1]] + [[0]] * 4):
        plain.grad, lazy.grad = grad.clone(), grad.clone()
        adam.step()
        row_adam.step()
    after_one_update = start[1] - 0.1 * torch.sign(_grads(1, 2, 4, [[0, 1]])[0][1])
    torch.testing.assert_close(lazy.detach()[1], after_one_update, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(plain.detach()[1], lazy.detach()[1])


def test_state_round_trips_and_refuses_other_shapes():
    table = torch.nn.Parameter(torch.randn(3, 2))
    optimizer = RowAdam([table], lr=0.1)
    table.grad = torch.ones(3, 2)
    optimizer.step()
    copy = RowAdam([torch.nn.Parameter(table.detach().clone())], lr=0.1)
    copy.load_state_dict(optimizer.state_dict())
    assert copy.state_dict()["state"][0]["steps"].tolist() == [1, 1, 1]
    vector = torch.nn.Parameter(torch.randn(3))
    vector.grad = torch.ones(3)
    with pytest.raises(ValueError, match="2-D"):
        RowAdam([vector]).step()
