"""train.precision on a CPU: the names it takes, what runs in 16 bits, and plain optimiser steps
(CUDA, TF32 and fp16 loss scaling: tests/training/test_trainer.py on a GPU machine)."""
from __future__ import annotations

import pytest
import torch

from imface.errors import ImfaceError
from imface.training.precision import Precision

CPU = torch.device("cpu")


def test_bad_names_and_fp16_on_a_cpu_are_refused():
    with pytest.raises(ImfaceError, match="train.precision must be"):
        Precision("fp8", CPU)
    with pytest.raises(ImfaceError, match="fp16 needs a CUDA device"):
        Precision("fp16", CPU)


@pytest.mark.parametrize("name, dtype", [("fp32", torch.float32), ("tf32", torch.float32), ("bf16", torch.bfloat16)])
def test_autocast_runs_matmuls_in_the_named_type(name, dtype):
    precision = Precision(name, CPU)
    assert not precision.scales_loss
    a, b = torch.randn(4, 8), torch.randn(8, 3)
    with precision.autocast():
        assert (a @ b).dtype == dtype
    assert (a @ b).dtype == torch.float32  # only under autocast


@pytest.mark.parametrize("name", ["fp32", "tf32", "bf16"])
def test_backward_and_step_are_plain_without_loss_scaling(name):
    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 1)
    optimizers = [torch.optim.SGD(layer.parameters(), lr=0.1)]
    precision = Precision(name, CPU)
    before = layer.weight.detach().clone()
    loss = layer(torch.ones(2, 3)).sum()
    precision.backward(loss, optimizers)
    expected_grad = torch.full((1, 3), 2.0)  # d/dw of the sum over two rows of w . 1
    torch.testing.assert_close(layer.weight.grad, expected_grad)
    precision.step(optimizers)
    torch.testing.assert_close(layer.weight.detach(), before - 0.1 * expected_grad)
