import pytest
import torch

from imface.fitting.code_space import FALLBACK_SPREAD, SPREAD_FLOOR, code_basis


def _codes(count: int, size: int, rank: int) -> torch.Tensor:
    """count code rows of width size spanning a rank-dimensional subspace, with unequal spreads."""
    generator = torch.Generator().manual_seed(0)
    axes = torch.linalg.qr(torch.randn(size, rank, generator=generator, dtype=torch.float64))[0]
    weights = torch.randn(count, rank, generator=generator, dtype=torch.float64) * torch.linspace(0.2, 0.02, rank)
    return 0.05 + weights @ axes.T


def _stats(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return rows.mean(dim=0), torch.cov(rows.T)


def test_the_diagonal_basis_is_the_per_entry_spread_with_a_floor():
    rows = _codes(200, 6, 6)
    rows[:, 5] = 0.3  # an entry that never varies
    mean, cov = _stats(rows)
    got_mean, basis = code_basis(mean, cov, "diagonal")
    spread = cov.diagonal().clamp_min(0).sqrt()
    rms = float(cov.diagonal().mean().sqrt())
    torch.testing.assert_close(got_mean, mean.float())
    torch.testing.assert_close(basis, torch.diag(spread.clamp_min(SPREAD_FLOOR * rms)).float())
    assert basis[5, 5] == pytest.approx(SPREAD_FLOOR * rms, rel=1e-5)


def test_the_principal_basis_reproduces_the_covariance_and_floors_unused_directions():
    rows = _codes(300, 8, 3)  # 5 of 8 directions carry no variation
    mean, cov = _stats(rows)
    _, basis = code_basis(mean, cov, "principal", floor=0.0)
    torch.testing.assert_close(basis.double() @ basis.double().T, cov, atol=1e-7, rtol=1e-4)
    _, floored = code_basis(mean, cov, "principal")
    spreads = floored.double().norm(dim=0)  # the axes are orthonormal: column norms are the spreads
    rms = float(cov.diagonal().mean().sqrt())
    assert int((spreads <= SPREAD_FLOOR * rms * 1.0001).sum()) == 5
    # A unit step along a floored direction moves the code 10x less than the same step in the diagonal basis.
    _, diagonal = code_basis(mean, cov, "diagonal")
    assert floored.norm(dim=0).min() < 0.5 * diagonal.norm(dim=0).min()


def test_codes_without_spread_fall_back_to_the_init_std():
    mean, basis = code_basis(torch.zeros(4), torch.zeros(4, 4), "principal", device="cpu")
    torch.testing.assert_close(basis, torch.eye(4) * FALLBACK_SPREAD)


def test_an_unknown_basis_is_refused():
    with pytest.raises(ValueError, match="code basis"):
        code_basis(torch.zeros(2), torch.eye(2), "spherical")
