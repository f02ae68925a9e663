"""What every phase's checks share: comparing an answer with the expected values, naming the mistake it
reproduces, and probing the properties a right answer has.

Introduced with the Phase 0 checks; public so that each phase's module (``utils.checks.phaseN``) uses the same
helpers and words. A check diagnoses a wrong answer in three steps, most specific first:

1. **known mistakes** (``diagnose(..., mistakes)``): the answer equals a reproduction of a common mistake
   (attention without the 1/sqrt(d) scaling) — the hint names it;
2. **shape and type**: the answer has the wrong shape, dtype or type — the hint says what was expected and
   what came back (:func:`require_tensor`, :func:`describe`);
3. **properties** (``diagnose(..., probes=[Probe(...)])``): each probe isolates one property every right
   answer has — invariance to a permutation, independence of the examples in a batch, ignoring padding,
   unit length, symmetry, determinism in train mode... — so that a mistake nobody listed still fails a
   named property, and the hint says which one. :func:`equivariant`, :func:`batch_independent`,
   :func:`unchanged_when` and the predicates below build the probes.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from . import CheckFailed, Mismatch, Unsolved

# --- comparing and describing ----------------------------------------------------------------------------------


def close(a: Any, b: torch.Tensor, atol: float = 1e-5) -> bool:
    """True when ``a`` is a tensor of ``b``'s shape whose values match within ``atol``."""
    return isinstance(a, torch.Tensor) and a.shape == b.shape and torch.allclose(a.float(), b.float(), atol=atol)


def describe(value: Any) -> str:
    """A short account of what an answer returned, for feedback: "a tensor of shape (2, 5) (float32)",
    "a tuple of 2: (a tensor of shape (2, 5) (float32), a tensor of shape (2, 5, 5) (float32))", "None"."""
    if value is None:
        return "None"
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)} ({str(value.dtype).replace('torch.', '')})"
    if isinstance(value, (tuple, list)):
        kind = type(value).__name__
        if len(value) > 4:
            return f"a {kind} of {len(value)} items"
        return f"a {kind} of {len(value)}: ({', '.join(describe(v) for v in value)})"
    if isinstance(value, (bool, int, float, str)):
        return f"{type(value).__name__} {value!r}"[:80]
    return f"a {type(value).__name__}"


def call(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``, or ``Unsolved`` when it returns the starter's None or ``...``."""
    out = fn(*args)
    if out is None or out is Ellipsis:
        raise Unsolved
    return out


def number(out: Any, what: str) -> float:
    """``out`` as a float when it is one number (a Python number, or a one-element tensor or array); ``Unsolved``
    for the starter's None or ``...``; else feedback naming what came back."""
    if out is None or out is Ellipsis:
        raise Unsolved
    if hasattr(out, "shape") and hasattr(out, "__float__") and math.prod(out.shape) == 1:
        return float(out)
    if isinstance(out, bool) or not isinstance(out, numbers.Real):
        raise CheckFailed(f"{what} should return one number; it returned {describe(out)}.")
    return float(out)


def int_list(out: Any, what: str) -> list[int]:
    """``out`` as a list of Python ints (from a list, tuple, tensor or array of integers); ``Unsolved`` for the
    starter; else feedback saying ``what`` should return a list of integers and what came back."""
    if out is None or out is Ellipsis:
        raise Unsolved
    if hasattr(out, "tolist"):
        out = out.tolist()
    if not isinstance(out, (list, tuple)) or not all(isinstance(i, numbers.Integral) for i in out):
        raise CheckFailed(f"{what}; it returned {describe(out)}.")
    return [int(i) for i in out]


def number_dict(out: Any, keys: Sequence[str], what: str) -> dict[str, float]:
    """``out`` as {key: float} for the ``keys`` a dict-returning exercise promises; ``Unsolved`` for the starter (or
    a dict still holding ``...``); else feedback naming what is missing or what came back."""
    if out is None or out is Ellipsis:
        raise Unsolved
    if not isinstance(out, dict):
        raise CheckFailed(f"{what} should return a dict with the keys {', '.join(keys)}; it returned "
                          f"{describe(out)}.")
    if any(v is Ellipsis for v in out.values()):
        raise Unsolved
    missing = [k for k in keys if k not in out]
    if missing:
        raise CheckFailed(f"the dict is missing {', '.join(missing)} (expected the keys {', '.join(keys)}).")
    return {k: number(out[k], f"the value of {k!r}") for k in keys}


def require_tensor(out: object, what: str, shape: Sequence[int] | None = None) -> torch.Tensor:
    """``out`` itself when it is a tensor (of ``shape``, when given); ``Unsolved`` for the starter's None; else
    feedback naming what came back — including the common "returned the module's whole (output, weights)
    tuple" of ``nn.MultiheadAttention`` and friends."""
    if out is None:  # the starter (`...`) returns None
        raise Unsolved
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        raise CheckFailed(f"{what} should return one tensor; it returned {describe(out)}. Modules such as "
                          "nn.MultiheadAttention return a tuple (output, attention weights): keep the output, "
                          "`[0]`.")
    if not isinstance(out, torch.Tensor):
        raise CheckFailed(f"{what} should return a torch.Tensor; it returned {describe(out)}.")
    if shape is not None and tuple(out.shape) != tuple(shape):
        raise CheckFailed(f"{what} should return shape {tuple(shape)}; it returned {describe(out)}.")
    return out


# --- properties ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Probe:
    """One property of a right answer. ``holds()`` runs the answer on inputs built for that property and says
    whether it keeps it; ``hint`` is what a learner reads when it does not ("your output changes when the
    padding changes: the masked positions still count")."""

    property: str
    holds: Callable[[], bool]
    hint: str


def broken(probes: Sequence[Probe]) -> Probe | None:
    """The first probe whose property does not hold. A probe whose answer raises tells nothing about its
    property and is skipped (the main comparison reports crashes)."""
    for probe in probes:
        try:
            ok = bool(probe.holds())
        except (CheckFailed, Unsolved):
            raise
        except Exception:  # noqa: BLE001 - a crash inside a probe is not evidence about this property
            continue
        if not ok:
            return probe
    return None


def all_hold(probes: Sequence[Probe]) -> bool:
    """Every probe holds and none raises — stricter than :func:`broken`, which skips a probe that raises. For a
    check's tests (every probe holds for the reference and for valid variants) and for a check that requires
    the properties of an answer whose values already passed."""
    try:
        return all(bool(p.holds()) for p in probes)
    except (CheckFailed, Unsolved):
        raise
    except Exception:  # noqa: BLE001 - an answer a probe cannot run is not accepted on that ground
        return False


def never_raises(holds: Callable[[], bool]) -> Callable[[], bool]:
    """Wrap a probe predicate for which an exception is itself the broken property (:func:`broken` skips a
    probe that raises): e.g. a ZeroDivisionError on an empty union is exactly what an IoU probe is about."""
    def wrapped() -> bool:
        try:
            return bool(holds())
        except (CheckFailed, Unsolved):
            raise
        except Exception:  # noqa: BLE001 - the crash is the evidence
            return False

    return wrapped


def require_properties(probes: Sequence[Probe]) -> None:
    """Raise CheckFailed with the hint of the first broken property (for checks that test properties first)."""
    probe = broken(probes)
    if probe is not None:
        raise CheckFailed(probe.hint)


def diagnose(got: torch.Tensor, expected: torch.Tensor, mistakes: dict[str, torch.Tensor], default: str,
             probes: Sequence[Probe] = ()) -> None:
    """Return if ``got`` matches ``expected``; else raise CheckFailed naming the mistake it reproduces, else the
    wrong shape, else the first property in ``probes`` it breaks, else ``default``."""
    if close(got, expected):
        return
    for hint, wrong in mistakes.items():  # before the shape test: some mistakes change the shape
        if close(got, wrong, atol=1e-4):
            raise CheckFailed(hint)
    if not isinstance(got, torch.Tensor):
        raise CheckFailed(f"expected a tensor of shape {tuple(expected.shape)}; got {describe(got)}.")
    if got.shape != expected.shape:
        raise CheckFailed(f"wrong shape: got {tuple(got.shape)}, expected {tuple(expected.shape)}. "
                          f"{default[:1].upper()}{default[1:]}")
    probe = broken(probes)
    if probe is not None:
        raise CheckFailed(probe.hint)
    err = (got.float() - expected.float()).abs().max().item()
    raise Mismatch(f"{default} (largest difference from the expected values: {err:.3g})")


# Probe builders: each returns a zero-argument predicate for a Probe's ``holds``. ``f`` is the learner's answer
# wrapped so it takes the probe's input and returns a tensor.

def equivariant(f: Callable[[Any], torch.Tensor], x: Any, transform_in: Callable[[Any], Any],
                transform_out: Callable[[torch.Tensor], torch.Tensor], atol: float = 1e-4) -> Callable[[], bool]:
    """f(transform_in(x)) == transform_out(f(x)): e.g. permuting the tokens permutes the output rows."""
    return lambda: close(f(transform_in(x)), transform_out(f(x)), atol)


def invariant(f: Callable[[Any], torch.Tensor], x: Any, transform: Callable[[Any], Any],
              atol: float = 1e-4) -> Callable[[], bool]:
    """f(transform(x)) == f(x): e.g. rescaling the inputs leaves a cosine unchanged."""
    return equivariant(f, x, transform, lambda y: y, atol)


def batch_independent(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, split: int = 1,
                      atol: float = 1e-4) -> Callable[[], bool]:
    """f(x)[:split] == f(x[:split]): each example is computed on its own (nothing mixes across the batch)."""
    return lambda: close(f(x)[:split], f(x[:split]), atol)


def unchanged_when(f: Callable[[Any], torch.Tensor], x: Any, change: Callable[[Any], Any],
                   atol: float = 1e-4) -> Callable[[], bool]:
    """f(change(x)) == f(x) — for inputs that must not matter (padding, masked positions)."""
    return invariant(f, x, change, atol)


def changes_when(f: Callable[[Any], torch.Tensor], x: Any, change: Callable[[Any], Any],
                 atol: float = 1e-4) -> Callable[[], bool]:
    """f(change(x)) != f(x) — for inputs that must matter (the image, the gate, the position)."""
    return lambda: not close(f(change(x)), f(x), atol)


def unit_length(t: torch.Tensor, dim: int = -1, atol: float = 1e-4) -> bool:
    """Every vector along ``dim`` has L2 norm 1."""
    return isinstance(t, torch.Tensor) and torch.allclose(t.float().norm(dim=dim), torch.ones(()), atol=atol)


def sums_to_one(t: torch.Tensor, dim: int = -1, atol: float = 1e-4) -> bool:
    """Every slice along ``dim`` sums to 1 and is non-negative (a probability distribution)."""
    return (isinstance(t, torch.Tensor) and bool((t >= -atol).all())
            and torch.allclose(t.float().sum(dim), torch.ones(()), atol=atol))


def symmetric(t: torch.Tensor, atol: float = 1e-4) -> bool:
    """A square matrix (or a batch of them) equal to its transpose."""
    return isinstance(t, torch.Tensor) and t.shape[-1] == t.shape[-2] and torch.allclose(t, t.mT, atol=atol)


def deterministic(module: torch.nn.Module, x: torch.Tensor) -> bool:
    """The module gives the same output twice for the same input *in train mode* (no dropout, no noise)."""
    was = module.training
    module.train()
    try:
        with torch.no_grad():
            return close(module(x), module(x), 1e-6)
    finally:
        module.train(was)


def gradient_reaches(loss_of: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> bool:
    """A predicate (call it inside a Probe's ``holds``, e.g. ``lambda: gradient_reaches(f, x)``):
    ``loss_of(x)`` is differentiable and its gradient with respect to ``x`` is not all zero (nothing
    detached, no ``.item()`` or numpy round trip on the way)."""
    x = x.detach().clone().requires_grad_(True)
    loss = loss_of(x)
    if not isinstance(loss, torch.Tensor) or not loss.requires_grad:
        return False
    (grad,) = torch.autograd.grad(loss.sum(), x, allow_unused=True)
    return grad is not None and bool(grad.abs().sum() > 0)


def gradient_reaches_parameters(out_of: Callable[[], torch.Tensor], module: torch.nn.Module) -> bool:
    """A predicate: every trainable parameter of ``module`` gets a non-zero gradient from ``out_of().sum()``
    (nothing detached, no ``torch.no_grad()`` around the learned part). The parameter-side twin of
    :func:`gradient_reaches`."""
    params = [p for p in module.parameters() if p.requires_grad]
    out = out_of()
    if not isinstance(out, torch.Tensor) or not out.requires_grad:
        return False
    grads = torch.autograd.grad(out.sum(), params, allow_unused=True)
    return all(g is not None and bool(g.abs().sum() > 0) for g in grads)
