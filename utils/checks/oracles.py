"""What every phase's checks share: comparing an answer with an oracle, and naming the mistake it reproduces.

Introduced with the Phase 0 checks; public so that each phase's module (``utils.checks.phaseN``) uses the same
helpers and words.
"""
from __future__ import annotations

import torch

from . import CheckFailed, Unsolved


def close(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-5) -> bool:
    """True when ``a`` is a tensor of ``b``'s shape whose values match within ``atol``."""
    return isinstance(a, torch.Tensor) and a.shape == b.shape and torch.allclose(a.float(), b.float(), atol=atol)


def require_tensor(out: object, what: str) -> torch.Tensor:
    """``out`` itself when it is a tensor; ``Unsolved`` for the starter's None; else feedback naming the type."""
    if out is None:  # the starter (`...`) returns None
        raise Unsolved
    if not isinstance(out, torch.Tensor):
        raise CheckFailed(f"{what} should return a torch.Tensor, got {type(out).__name__}.")
    return out


def diagnose(got: torch.Tensor, expected: torch.Tensor, mistakes: dict[str, torch.Tensor], default: str) -> None:
    """Return if ``got`` matches ``expected``; else raise CheckFailed naming the mistake it reproduces."""
    if close(got, expected):
        return
    for hint, wrong in mistakes.items():  # before the shape test: some mistakes change the shape
        if close(got, wrong, atol=1e-4):
            raise CheckFailed(hint)
    if got.shape != expected.shape:
        raise CheckFailed(f"wrong shape: got {tuple(got.shape)}, expected {tuple(expected.shape)}. "
                          f"{default[:1].upper()}{default[1:]}")
    err = (got.float() - expected.float()).abs().max().item()
    raise CheckFailed(f"{default} (largest difference from the expected values: {err:.3g})")
