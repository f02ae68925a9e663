"""Checks for the Phase 7 exercises (unified and any-to-any models).

Oracles: ``vector_quantize_pytorch``'s ``VectorQuantize`` with the same codebook and its plain straight-through
estimator (7.1: the nearest-code indices, the quantised values and the gradient that reaches the latents), and
``torch.distributions.Categorical``'s entropy (7.2), ``transformers``' causal-LM loss (``ForCausalLMLoss``) with the
other modality's labels set to -100 (7.3), ``transformers``' ``SuppressTokensLogitsProcessor`` (7.4), Mixtral's
``MixtralTopKRouter`` (7.5) and ``load_balancing_loss_func`` (7.6) from ``transformers``, and ``diffusers``'
``DDPMScheduler`` (7.7: ``add_noise``; 7.8: ``step``'s ``pred_original_sample``) and ``ClassifierFreeGuidance`` (7.9),
PyTorch's FlexAttention ``create_mask`` with Transfusion's rule (7.10).

7.1 the vector quantiser (nearest code, straight-through gradient, codebook and commitment losses), 7.2 codebook
perplexity, 7.3 the loss of each modality, 7.4 drawing with image tokens only, 7.5 routing tokens to experts, 7.6 the
load-balancing loss, 7.7 the forward process of diffusion, 7.8 the clean image from the noise, 7.9 classifier-free
guidance, 7.10 Transfusion's attention mask.

Besides the known mistakes, each check probes properties every right answer has: a codeword is quantised to itself,
renumbering the codebook renumbers the codes and changes nothing else, every latent vector is quantised on its own,
the gradient of the quantised latents reaches the latents unchanged and never the codebook, the codebook loss moves
only the codebook and the commitment loss only the encoder; perplexity is the number of codes when all are used
equally and 1 when one is, ignores codes never used and the order of the tokens; the loss of each modality is
decided by the token *predicted* (one step ahead), ignores padding and does not depend on how the batch is padded or
split; the image-token restriction keeps the image codes' logits as they are and only those, in a new tensor; a
token's routing weights sum to 1, ignore a shift of its scores, depend on its own scores only and make top-1 a hard
choice; the balancing loss is k when routing is even, E when it collapses, and blind to the order of the tokens; the
forward process leaves x₀ almost as it is at t = 0, shrinks it by exactly √ᾱ_t when the noise is zero, uses each
example's own timestep, and the clean-image prediction undoes it exactly when given the true noise; guidance gives
the conditional estimate back at w = 1, the unconditional one at w = 0, and moves linearly in w, elementwise;
Transfusion's mask is the causal mask when there is no image, makes each image one block, never lets a position see
a later image or later words, and depends only on whether two positions share an image, not on its number.
"""
from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F

from .. import diffusion as udiffusion
from .. import moe as umoe
from .. import transfusion as utransfusion
from .. import unified as uunified
from .. import vq as uvq
from . import CheckFailed, Mismatch, register
from .oracles import Probe, all_hold, broken, close, describe, diagnose, require_properties, require_tensor

# The references captured at import: a notebook rebinds names to a learner's passing version.
_quantize, _perplexity = uvq.vector_quantize, uvq.codebook_perplexity
_losses, _restrict = uunified.modality_losses, uunified.only_image_tokens
_add_noise, _predict_x0 = udiffusion.add_noise, udiffusion.predict_x0


# --- 7.1 the vector quantiser --------------------------------------------------------------------------------------

def _vq_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    """Latents (2, 4, 3, 5) — D = 4 channels on a 3×5 grid, so that H, W and D all differ — and a codebook (12, 4)."""
    g = torch.Generator().manual_seed(71)
    return torch.randn(2, 4, 3, 5, generator=g), torch.randn(12, 4, generator=g)


def _library_quantize(z: torch.Tensor, codebook: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """vector_quantize_pytorch's VectorQuantize with ``codebook`` and the plain straight-through estimator (its
    default is the rotation trick): (quantised values, indices (B, H, W), gradient of sum(quantised · w) w.r.t. z)
    for a fixed random weight w."""
    from vector_quantize_pytorch import VectorQuantize

    vq = VectorQuantize(dim=codebook.shape[1], codebook_size=codebook.shape[0], accept_image_fmap=True,
                        rotation_trick=False, ema_update=False, learnable_codebook=True)
    with torch.no_grad():
        vq._codebook.embed.copy_(codebook[None])
    vq.train()
    x = z.clone().requires_grad_(True)
    q, indices, _ = vq(x)
    w = _weights(z)
    (grad,) = torch.autograd.grad((q * w).sum(), x)
    return q.detach(), indices, grad


def _weights(z: torch.Tensor) -> torch.Tensor:
    return torch.randn(z.shape, generator=torch.Generator().manual_seed(72))


def _as_four(out, what: str = "vector_quantize") -> tuple:
    """The answer's (quantized, indices, codebook_loss, commitment_loss), or feedback on what came back."""
    if out is None or out is Ellipsis:
        from . import Unsolved

        raise Unsolved
    if not isinstance(out, tuple) or len(out) != 4:
        raise CheckFailed(f"{what} should return four things — (quantized, indices, codebook_loss, "
                          f"commitment_loss) — it returned {describe(out)}.")
    return tuple(out)


def _run(fn, z: torch.Tensor, codebook: torch.Tensor) -> tuple:
    return _as_four(fn(z.clone(), codebook.clone()))


def _grads(fn, z: torch.Tensor, codebook: torch.Tensor, which: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Gradients w.r.t. (z, codebook) of output ``which``: 0 = sum(quantized · w), 2 = codebook loss, 3 = commitment
    loss. None where no gradient arrives."""
    x, book = z.clone().requires_grad_(True), codebook.clone().requires_grad_(True)
    out = _as_four(fn(x, book))[which]
    if not isinstance(out, torch.Tensor) or not out.requires_grad:
        return None, None
    target = (out * _weights(z)).sum() if which == 0 else out.sum()
    gz, gb = torch.autograd.grad(target, (x, book), allow_unused=True)
    nonzero = lambda g: g if g is not None and bool(g.abs().sum() > 0) else None  # noqa: E731
    return nonzero(gz), nonzero(gb)


def _nearest(flat: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    return torch.cdist(flat, codebook).argmin(-1)


def _quantizer_probes(fn, z: torch.Tensor, codebook: torch.Tensor) -> list[Probe]:
    """Properties of every right vector quantiser, for latents (B, D, H, W) and a codebook (K, D)."""
    def indices(x, book):
        return require_tensor(_run(fn, x, book)[1], "the indices")

    def quantized(x, book):
        return require_tensor(_run(fn, x, book)[0], "the quantized latents")

    def codeword_codes_itself() -> bool:
        grid = codebook[[3, 7, 11, 0]].T.reshape(1, 4, 2, 2)  # (1, D, 2, 2): four codewords on a 2×2 grid
        return indices(grid, codebook).reshape(-1).tolist() == [3, 7, 11, 0]

    def renumbering() -> bool:
        perm = torch.randperm(len(codebook), generator=torch.Generator().manual_seed(73))
        inverse = torch.argsort(perm)
        # codebook[perm][i] = codebook[perm[i]]: the code that was c is now inverse[c]
        return (torch.equal(indices(z, codebook[perm]), inverse[indices(z, codebook)])
                and close(quantized(z, codebook[perm]), quantized(z, codebook)))

    def vectors_on_their_own() -> bool:
        return torch.equal(indices(z[:, :, :1, :2], codebook), indices(z, codebook)[:, :1, :2])

    def straight_through() -> bool:
        gz, gb = _grads(fn, z, codebook, 0)
        return gz is not None and close(gz, _weights(z)) and gb is None

    def codebook_loss_moves_codebook_only() -> bool:
        gz, gb = _grads(fn, z, codebook, 2)
        return gz is None and gb is not None

    def commitment_moves_encoder_only() -> bool:
        gz, gb = _grads(fn, z, codebook, 3)
        return gz is not None and gb is None

    return [
        Probe("a codeword is its own code", codeword_codes_itself,
              "a latent vector that *is* codeword 3 must get index 3: the code is the nearest codeword in Euclidean "
              "distance over the D channels (axis 1 of z) — a dot product alone prefers long codewords."),
        Probe("renumbering the codebook", renumbering,
              "shuffling the codebook's rows should only renumber the indices and leave the quantized latents "
              "unchanged: look the quantized vectors up as codebook[indices]."),
        Probe("each vector on its own", vectors_on_their_own,
              "each latent vector — one grid cell of one image, its D numbers along axis 1 — should be quantised "
              "on its own: moving D to the last axis needs a permute (z.permute(0, 2, 3, 1)), not a reshape or view, "
              "which mixes numbers of different cells."),
        Probe("straight-through", straight_through,
              "the gradient of the quantized latents should reach z unchanged (the straight-through estimator: "
              "quantized = z + (q - z).detach()) and never the codebook — the codebook learns from its own loss."),
        Probe("codebook loss", codebook_loss_moves_codebook_only,
              "the codebook loss ||sg(z) - q||² should move only the codebook: detach z in it, keep q attached."),
        Probe("commitment loss", commitment_moves_encoder_only,
              "the commitment loss ||z - sg(q)||² should move only the encoder: detach the codewords q in it, keep "
              "z attached."),
    ]


@register("7.1", "the vector quantiser", uvq.vector_quantize, hints=(
    "Four things: the nearest codeword of every latent vector, the quantized latents that let the gradient pass, "
    "and two mean squared errors, each with one side detached.",
    "Section 1, 'Images as tokens': VQ-VAE (van den Oord et al., 2017), equation 3. The latent vectors are "
    "z's D channels (axis 1) at each grid cell; sg(·) is .detach(). The codebook loss ||sg(z) - q||² trains the "
    "codewords, the commitment loss ||z - sg(q)||² the encoder, and quantized = z + (q - z).detach() equals q "
    "going forward while its gradient goes to z as if quantisation were the identity.",
    "Worked sub-step: `flat = z.permute(0, 2, 3, 1).reshape(-1, D)` is (B·H·W, D); `torch.cdist(flat, codebook)` "
    "is (B·H·W, K); its argmin over the last axis gives the indices; `codebook[indices]` reshaped to (B, H, W, D) "
    "and permuted back is q (B, D, H, W). Losses: `F.mse_loss(q, z.detach())` and `F.mse_loss(z, q.detach())`.",
))
def _check_quantizer(fn) -> str:
    z, codebook = _vq_inputs()
    z_in, book_in = z.clone(), codebook.clone()
    got = _as_four(fn(z_in, book_in))
    if not torch.equal(z_in, z) or not torch.equal(book_in, codebook):
        raise CheckFailed("your function changed the tensors it was given (an in-place operation on z or on the "
                          "codebook): compute new tensors instead.")
    quantized, indices, codebook_loss, commitment_loss = got
    lib_q, lib_idx, lib_grad = _library_quantize(z, codebook)
    ref = _quantize(z, codebook)
    b, d, h, w = z.shape
    quantized = require_tensor(quantized, "the quantized latents (first item)")
    indices = require_tensor(indices, "the indices (second item)")
    probes = _quantizer_probes(fn, z, codebook)

    # the indices
    if indices.dtype.is_floating_point:
        raise CheckFailed(f"the indices should be integers (torch.long), one per grid cell; they are "
                          f"{describe(indices)}.")
    flat_lib = lib_idx.reshape(-1)
    if indices.shape != lib_idx.shape:
        if indices.numel() == lib_idx.numel() and torch.equal(indices.reshape(-1), flat_lib):
            raise CheckFailed(f"the indices are right but flat, {describe(indices)}: reshape them to (B, H, W) = "
                              f"{tuple(lib_idx.shape)}, one code per grid cell, the image's token grid.")
        raise CheckFailed(f"the indices should have shape (B, H, W) = {tuple(lib_idx.shape)}, one code per grid cell; "
                          f"they are {describe(indices)}.")
    vectors = z.permute(0, 2, 3, 1).reshape(-1, d)
    scrambled = z.reshape(-1, d)                                                      # no permute
    unit = F.normalize
    index_mistakes = {
        "you took the farthest codeword: the code is the argmin of the distance, not the argmax.":
            torch.cdist(vectors, codebook).argmax(-1),
        "you picked the codeword with the largest dot product: that favours long codewords. Use the Euclidean "
        "distance (torch.cdist, or |z|² - 2 z·c + |c|²).": (vectors @ codebook.T).argmax(-1),
        "you picked the codeword with the largest cosine similarity: that ignores the codewords' lengths, and the "
        "quantizer replaces z by the codeword itself. Use the Euclidean distance.":
            (unit(vectors, dim=-1) @ unit(codebook, dim=-1).T).argmax(-1),
        "you reshaped z (B, D, H, W) to (-1, D) without moving the channels last: each 'vector' then mixes numbers "
        "of different cells. Permute first: z.permute(0, 2, 3, 1).reshape(-1, D).":
            _nearest(scrambled, codebook) if scrambled.shape[1] == d else None,
    }
    for hint, wrong in index_mistakes.items():
        if wrong is not None and torch.equal(indices.reshape(-1).long(), wrong):
            raise CheckFailed(hint)
    if not torch.equal(indices.long(), lib_idx.long()):
        probe = broken(probes[:3])
        if probe is not None:
            raise CheckFailed(probe.hint)
        raise Mismatch(f"{int((indices.long() != lib_idx.long()).sum())} of {lib_idx.numel()} indices differ from "
                       "vector_quantize_pytorch's nearest codes.")

    # the quantized values and their gradient
    if quantized.shape != lib_q.shape:
        if quantized.shape == (b, h, w, d) and close(quantized.permute(0, 3, 1, 2), lib_q):
            raise CheckFailed("the quantized latents are (B, H, W, D): permute them back to (B, D, H, W), the layout "
                              "of z, so that the decoder can read them.")
        raise CheckFailed(f"the quantized latents should have z's shape {tuple(z.shape)}; they are "
                          f"{describe(quantized)}.")
    if close(quantized, z) and not close(z, lib_q):
        raise CheckFailed("your quantized latents equal z itself: the forward value must be the codewords. With the "
                          "straight-through trick it is z + (q - z).detach() — the detach on (q - z), not on z.")
    if not close(quantized, lib_q):
        probe = broken(probes[:3])
        raise CheckFailed(probe.hint if probe else "the quantized latents should be the chosen codewords, "
                          "codebook[indices], laid out like z (B, D, H, W).")
    gz, gb = _grads(fn, z, codebook, 0)
    if gz is None:
        raise CheckFailed("no gradient reaches z through your quantized latents, so the encoder could never learn "
                          "(argmin has no gradient). Use the straight-through estimator: quantized = z + (q - "
                          "z).detach() — forward it is q, backward the identity.")
    if gb is not None:
        raise CheckFailed("the gradient of your quantized latents reaches the codebook: with the straight-through "
                          "estimator z + (q - z).detach() it reaches only z; the codebook is trained by the codebook "
                          "loss.")
    if not close(gz, lib_grad):
        raise CheckFailed("the gradient that reaches z differs from the upstream gradient: the straight-through "
                          "estimator passes it unchanged (quantized = z + (q - z).detach(), no scaling).")

    # the losses
    for name, value in (("codebook_loss", codebook_loss), ("commitment_loss", commitment_loss)):
        if not isinstance(value, torch.Tensor) or value.numel() != 1:
            raise CheckFailed(f"{name} should be one number, a 0-dimensional tensor (a mean over every element); it "
                              f"is {describe(value)}.")
    expected = float(ref.codebook_loss)
    diff = (z - lib_q)
    loss_mistakes = {
        "a sum: take the mean squared error over every element (F.mse_loss), so that the loss does not grow "
        "with the batch or the grid.": float((diff ** 2).sum()),
        "the β = 0.25 weighting belongs in the training loss, not here: return the two plain mean squared errors.":
            0.25 * expected,
        "a mean absolute error: VQ-VAE's losses are squared errors (F.mse_loss).": float(diff.abs().mean()),
        "a norm, not a mean squared error: use F.mse_loss (the mean of the squared differences).":
            float(diff.norm()),
        "the mean over the vectors of the distance summed over D: take the mean over every element (F.mse_loss), "
        "which is that divided by D.": float((diff ** 2).sum(1).mean()),
    }
    for name, value in (("codebook_loss", codebook_loss), ("commitment_loss", commitment_loss)):
        v = float(value.detach())
        if not math.isclose(v, expected, rel_tol=1e-4, abs_tol=1e-6):
            for hint, wrong in loss_mistakes.items():
                if math.isclose(v, wrong, rel_tol=1e-4):
                    raise CheckFailed(f"{name}: {hint}")
            raise Mismatch(f"{name} = {v:.4g}; the mean squared error between z and its codewords is {expected:.4g}.")
    cz, cb = _grads(fn, z, codebook, 2)
    mz, mb = _grads(fn, z, codebook, 3)
    if cz is not None and cb is None and mz is None and mb is not None:
        raise CheckFailed("the two losses are swapped: the codebook loss should move the codebook (detach z in it), "
                          "the commitment loss the encoder (detach q). Their values are equal; only the gradients "
                          "tell them apart.")
    if cb is None:
        raise CheckFailed("no gradient of your codebook loss reaches the codebook, so the codewords never move: "
                          "||sg(z) - q||² — detach z, keep q = codebook[indices] attached (not the straight-through "
                          "quantized, whose gradient goes to z).")
    if cz is not None:
        raise CheckFailed("your codebook loss also pulls the encoder: detach z in it (||sg(z) - q||²); pulling z is "
                          "the commitment loss's job, with its own weight β.")
    if mz is None:
        raise CheckFailed("no gradient of your commitment loss reaches z: ||z - sg(q)||² — keep z attached.")
    if mb is not None:
        raise CheckFailed("your commitment loss also moves the codebook: detach the codewords in it (||z - sg(q)||²).")
    if not all_hold(probes):
        probe = broken(probes)
        raise CheckFailed(probe.hint if probe else "your quantizer fails on inputs other than the check's.")
    used = int(torch.unique(lib_idx).numel())
    return (f"the same codes and quantized latents as vector_quantize_pytorch's VectorQuantize ({lib_idx.numel()} "
            f"vectors, {used} of {len(codebook)} codes used), the straight-through gradient, and both losses.")


# --- 7.2 codebook perplexity ---------------------------------------------------------------------------------------

def _number(out, what: str = "codebook_perplexity") -> float:
    if out is None or out is Ellipsis:
        from . import Unsolved

        raise Unsolved
    if isinstance(out, torch.Tensor) and out.numel() == 1:
        return float(out)
    if isinstance(out, numbers.Real):
        return float(out)
    raise CheckFailed(f"{what} should return one number (a float); it returned {describe(out)}.")


def _oracle_perplexity(indices: torch.Tensor, n_codes: int) -> float:
    counts = torch.bincount(indices.flatten(), minlength=n_codes).float()
    return float(torch.distributions.Categorical(probs=counts / counts.sum()).entropy().exp())


def _perplexity_inputs() -> torch.Tensor:
    """Tokens (3, 4, 4) over 16 codes, skewed (code 0 is frequent) and with codes 13–15 never used."""
    g = torch.Generator().manual_seed(74)
    p = torch.tensor([8.0, 4, 3, 2, 2, 1, 1, 1, 1, 1, 0.5, 0.5, 0.5, 0, 0, 0])
    return torch.multinomial(p / p.sum(), 48, replacement=True, generator=g).view(3, 4, 4)


def _perplexity_probes(fn, tokens: torch.Tensor, n: int) -> list[Probe]:
    f = lambda t, k: _number(fn(t.clone(), k))  # noqa: E731
    uniform = torch.arange(n).repeat(3)
    return [
        Probe("all codes equally", lambda: math.isclose(f(uniform, n), n, rel_tol=1e-4),
              f"when all {n} codes are used equally often the perplexity should be {n}: exp of the entropy of the "
              "code frequencies, with natural logarithms (or 2 ** the entropy in bits)."),
        Probe("one code", lambda: math.isclose(f(torch.full((20,), 5), n), 1.0, rel_tol=1e-4),
              "when one code does all the work the perplexity should be 1 (entropy 0): a codebook that effectively "
              "has one code."),
        Probe("unused codes", lambda: math.isclose(f(tokens, n), f(tokens, 2 * n), rel_tol=1e-4),
              "codes that are never used should not change the perplexity (a larger n_codes adds only zeros): "
              "their term p·log p is 0 — skip them; 0 · log 0 is nan in floating point."),
        Probe("every token", lambda: math.isclose(f(tokens, n), f(tokens.reshape(-1), n), rel_tol=1e-4),
              "the perplexity should count every token, whatever the shape of the indices ((B, H, W) for a batch of "
              "token grids, or flat): flatten them before counting."),
        Probe("order", lambda: math.isclose(f(tokens, n), f(tokens.flip(-1), n), rel_tol=1e-4),
              "the perplexity depends on how often each code is used, not on where: count the codes (torch.bincount "
              "over the flattened indices)."),
    ]


@register("7.2", "codebook perplexity", uvq.codebook_perplexity, hints=(
    "Count how often each code is used, turn the counts into frequencies, and take exp of their entropy.",
    "Section 1, 'How many codes are alive': the perplexity exp(H), H = -Σ p_k log p_k over the codes' frequencies "
    "p_k, is the number of equally used codes that would have the same entropy — K when all K codes are used "
    "equally, 1 when one is. Codes with p_k = 0 contribute 0.",
    "Worked sub-step: torch.bincount over the flattened indices, with minlength=n_codes, counts every code (the "
    "unused ones as 0); divide by the total to get frequencies; keep only the non-zero ones before the logarithm.",
))
def _check_perplexity(fn) -> str:
    tokens = _perplexity_inputs()
    n = 16
    t_in = tokens.clone()
    got = _number(fn(t_in, n))
    if not torch.equal(t_in, tokens):
        raise CheckFailed("your function changed the indices it was given: work on a copy.")
    expected = _oracle_perplexity(tokens, n)
    counts = torch.bincount(tokens.flatten(), minlength=n).float()
    p = counts / counts.sum()
    nz = p[p > 0]
    h = float(-(nz * nz.log()).sum())
    h2 = float(-(nz * nz.log2()).sum())
    mistakes = {
        "that is the entropy H of the code frequencies: the perplexity is exp(H).": h,
        "that is the entropy in bits: the perplexity is 2 ** H for bits, or exp(H) for natural logarithms.": h2,
        "you took exp of the entropy in bits (log2): exp goes with the natural logarithm, 2 ** with log2.":
            math.exp(h2),
        "you took 2 ** the entropy in natural units: exp goes with the natural logarithm, 2 ** with log2.": 2 ** h,
        "that is the number of codes used at least once: perplexity weighs each code by how often it is used (a "
        "code used once counts far less than one used in every image).": float((counts > 0).sum()),
        "that is 1 / Σ p², the inverse Simpson index (Rényi entropy of order 2): the perplexity is exp of the Shannon "
        "entropy, -Σ p log p.": float(1 / (p ** 2).sum()),
        "you divided the counts by n_codes instead of by the number of tokens: the frequencies must sum to 1.":
            float(torch.exp(-(counts[counts > 0] / n * (counts[counts > 0] / n).log()).sum())),
    }
    if math.isnan(got):
        raise CheckFailed("your perplexity is nan: codes that are never used have p = 0 and 0 · log 0 gives nan in "
                          "floating point. Their term is 0 by convention: keep only p > 0 before the logarithm.")
    probes = _perplexity_probes(fn, tokens, n)
    if not math.isclose(got, expected, rel_tol=1e-4):
        for hint, wrong in mistakes.items():
            if math.isclose(got, wrong, rel_tol=1e-4):
                raise CheckFailed(hint)
        probe = broken(probes)
        if probe is not None:
            raise CheckFailed(probe.hint)
        raise Mismatch(f"your perplexity is {got:.4g}; exp of the entropy of the code frequencies is {expected:.4g}.")
    if not all_hold(probes):
        probe = broken(probes)
        raise CheckFailed(probe.hint if probe else "your perplexity fails on other token sets.")
    return (f"perplexity {got:.2f} of {n} codes on the check's {tokens.numel()} tokens, as torch.distributions."
            "Categorical's entropy gives; all codes used equally give 16, one code 1.")




# --- 7.3 the loss of each modality --------------------------------------------------------------------------------
# A toy vocabulary of 12: ids 0-5 are text (0 = padding), 6-11 the image codes (offset 6, 6 codes).
_OFFSET, _CODES, _V = 6, 6, 12


def _loss_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (3, 9, 12) and labels (3, 9): a text → image sequence, an image → text one and a shorter one padded
    with -100 — so that where a modality starts and where padding sits all matter."""
    g = torch.Generator().manual_seed(75)
    labels = torch.tensor([[1, 3, 4, 2, 6, 9, 11, 7, 5],        # <bos> w w <boi> img img img img <eoi>
                           [1, 2, 8, 8, 10, 6, 5, 3, 4],        # <bos> <boi> img img img img <eoi> w w
                           [1, 4, 2, 7, 11, 5, -100, -100, -100]])
    return torch.randn(3, 9, _V, generator=g) * 2, labels


def _oracle_losses(logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """transformers' causal-LM loss (it shifts the labels itself) with the other modality's targets set to -100."""
    from transformers.loss.loss_utils import ForCausalLMLoss

    image = (labels >= _OFFSET) & (labels < _OFFSET + _CODES)
    text_only = labels.masked_fill(image, -100)
    image_only = labels.masked_fill(~image, -100)
    return (float(ForCausalLMLoss(logits, text_only, _V)), float(ForCausalLMLoss(logits, image_only, _V)))


def _pair(out, what: str = "modality_losses") -> tuple[float, float]:
    if out is None or out is Ellipsis:
        from . import Unsolved

        raise Unsolved
    if not isinstance(out, tuple) or len(out) != 2:
        raise CheckFailed(f"{what} should return two losses, (text_loss, image_loss); it returned {describe(out)}.")
    vals = []
    for name, v in zip(("text_loss", "image_loss"), out):
        if not isinstance(v, torch.Tensor) or v.numel() != 1:
            raise CheckFailed(f"{name} should be one number, a 0-dimensional tensor (a mean over its targets); it is "
                              f"{describe(v)}.")
        vals.append(float(v.detach()))
    return vals[0], vals[1]


def _loss_variants(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, tuple[float, float]]:
    """Known wrong ways, computed: each -> (text, image)."""
    def split(lg, tg, decide):
        losses = F.cross_entropy(lg.reshape(-1, _V), tg.reshape(-1), ignore_index=-100,
                                 reduction="none").view(tg.shape)
        valid = tg != -100
        image = (decide >= _OFFSET) & (decide < _OFFSET + _CODES) & valid
        text = valid & ~image
        return float(losses[text].mean()), float(losses[image].mean())

    lg, tg = logits[:, :-1], labels[:, 1:]
    out = {
        "no shift": split(logits, labels, labels),
        "by input": split(lg, tg, labels[:, :-1]),
        "shift backwards": split(logits[:, 1:], labels[:, :-1], labels[:, :-1]),
    }
    losses = F.cross_entropy(lg.reshape(-1, _V), tg.reshape(-1), ignore_index=-100, reduction="none").view(tg.shape)
    valid = tg != -100                                  # losses are 0 at the padding (ignore_index)
    image = (tg >= _OFFSET) & (tg < _OFFSET + _CODES)
    text_all = valid & ~image
    out["padding counted"] = (float(losses[~image].mean()), float(losses[image].mean()))
    out["sum"] = (float(losses[text_all].sum()), float(losses[image & valid].sum()))
    out["over all"] = (float(losses[valid].mean()), float(losses[valid].mean()))
    per_seq_t = [(losses[i][text_all[i]].mean()) for i in range(len(tg)) if text_all[i].any()]
    per_seq_i = [(losses[i][image[i] & valid[i]].mean()) for i in range(len(tg)) if (image[i] & valid[i]).any()]
    out["per sequence"] = (float(torch.stack(per_seq_t).mean()), float(torch.stack(per_seq_i).mean()))
    exclusive_start = (tg > _OFFSET) & (tg < _OFFSET + _CODES)
    out["start"] = (float(losses[valid & ~exclusive_start].mean()), float(losses[exclusive_start].mean()))
    return out


def _loss_probes(fn, logits: torch.Tensor, labels: torch.Tensor) -> list[Probe]:
    run = lambda lg, lb: _pair(fn(lg.clone(), lb.clone(), _OFFSET, _CODES))  # noqa: E731

    def padding_free() -> bool:
        more = torch.cat([labels, torch.full((3, 2), -100)], 1)
        more_logits = torch.cat([logits, torch.randn(3, 2, _V, generator=torch.Generator().manual_seed(76))], 1)
        a, b = run(logits, labels), run(more_logits, more)
        return all(math.isclose(x, y, rel_tol=1e-4) for x, y in zip(a, b))

    def only_next_token() -> bool:
        changed = logits.clone()
        changed[2, 5:] += 7.0                    # logits at positions whose next label is padding (or none)
        a, b = run(logits, labels), run(changed, labels)
        return all(math.isclose(x, y, rel_tol=1e-4) for x, y in zip(a, b))

    def text_only_batch() -> bool:
        only_text = labels.clone()
        only_text[only_text >= _OFFSET] = 3     # no image targets at all: the image loss has nothing to average
        t, _ = run(logits, only_text)
        return math.isfinite(t)

    return [
        Probe("padding", padding_free,
              "extra padding (labels -100) should change neither loss: leave -100 targets out of both the sums and "
              "the counts (ignore_index=-100, and a mask that excludes them)."),
        Probe("next token", only_next_token,
              "the logits at the last real position predict nothing (the next label is padding) and must not count: "
              "position t predicts label t + 1 — compare logits[:, :-1] with labels[:, 1:]."),
        Probe("no image targets", text_only_batch,
              "a batch with no image targets should still give a finite text loss."),
    ]


@register("7.3", "the loss of each modality", uunified.modality_losses, hints=(
    "One cross-entropy per predicted token, then two averages: over the text targets and over the image targets.",
    "Section 2, 'One vocabulary': position t predicts token t + 1, so shift first (logits[:, :-1] against "
    "labels[:, 1:]), then decide each target's modality by its own id — an image code when it lies in "
    "[image_offset, image_offset + n_codes). Padding (-100) belongs to neither.",
    "Worked sub-step: `F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), ignore_index=-100, "
    "reduction='none').view(targets.shape)` gives one loss per target; with boolean masks `image` and `text = "
    "valid & ~image`, each loss is `losses[mask].mean()`.",
))
def _check_modality_losses(fn) -> str:
    logits, labels = _loss_inputs()
    lg_in, lb_in = logits.clone(), labels.clone()
    got = _pair(fn(lg_in, lb_in, _OFFSET, _CODES))
    if not torch.equal(lg_in, logits) or not torch.equal(lb_in, labels):
        raise CheckFailed("your function changed the logits or labels it was given: work on new tensors.")
    expected = _oracle_losses(logits, labels)
    if all(math.isclose(g, e, rel_tol=1e-4) for g, e in zip(got, expected)):
        probes = _loss_probes(fn, logits, labels)
        if not all_hold(probes):
            probe = broken(probes)
            raise CheckFailed(probe.hint if probe else "your losses fail on other batches.")
        return (f"text loss {got[0]:.3f}, image loss {got[1]:.3f} — the same as transformers' causal-LM loss with "
                "the other modality's labels set to -100.")
    if all(math.isclose(g, e, rel_tol=1e-4) for g, e in zip(got[::-1], expected)):
        raise CheckFailed("the two losses are swapped: return (text_loss, image_loss), in that order.")
    variants = _loss_variants(logits, labels)
    named = {
        "no shift": "no shift: the logits at position t predict the token at t + 1, so compare logits[:, :-1] with "
                    "labels[:, 1:] (as a causal LM's loss does).",
        "shift backwards": "the shift goes the wrong way: compare logits[:, :-1] (every position but the last) with "
                           "labels[:, 1:] (the tokens that follow them).",
        "by input": "you decided the modality by the *input* token: decide it by the target, the token being "
                    "predicted — the loss at <boi> predicts the first image code, so it is an image loss, and the "
                    "loss at the last image code predicts <eoi>, a text token.",
        "padding counted": "padding is counted: targets labelled -100 belong to neither loss — leave them out of "
                           "the text loss's mean.",
        "sum": "sums: each loss should be the mean over its own targets, so that it does not grow with the number "
               "of tokens of that modality.",
        "over all": "both numbers are the loss over every token: split the targets into text and image ones and "
                    "average each group on its own.",
        "per sequence": "you averaged per sequence and then over the batch: average over all the targets of a "
                        "modality in the batch at once (long sequences weigh more, as in the causal-LM loss).",
        "start": "image_offset itself is an image code (code 0): the image range is image_offset <= id < "
                 "image_offset + n_codes.",
    }
    for key, hint in named.items():
        if all(math.isclose(g, w, rel_tol=1e-4) for g, w in zip(got, variants[key])):
            raise CheckFailed(hint)
    probe = broken(_loss_probes(fn, logits, labels))
    if probe is not None:
        raise CheckFailed(probe.hint)
    raise Mismatch(f"your losses are ({got[0]:.4g}, {got[1]:.4g}); expected ({expected[0]:.4g}, {expected[1]:.4g}).")


# --- 7.4 drawing with image tokens only ---------------------------------------------------------------------------

def _restrict_inputs() -> torch.Tensor:
    """Logits (3, 14): ids 0-5 text, 6-11 image codes (offset 6, 6 codes), 12-13 text again (<boi>, <eoi> after
    the codes) — so that both ends of the range matter; the largest logit of row 0 is a text token."""
    g = torch.Generator().manual_seed(77)
    x = torch.randn(3, 14, generator=g)
    x[0, 2] = 5.0
    x[1, 12] = 5.0
    return x


def _oracle_restrict(logits: torch.Tensor, offset: int, n: int) -> torch.Tensor:
    from transformers import SuppressTokensLogitsProcessor

    others = [i for i in range(logits.shape[-1]) if not offset <= i < offset + n]
    return SuppressTokensLogitsProcessor(others)(torch.zeros(len(logits), 1, dtype=torch.long), logits.clone())


@register("7.4", "drawing with image tokens only", uunified.only_image_tokens, hints=(
    "Keep the image codes' logits as they are and make every other token impossible.",
    "Section 2, 'It draws': between <boi> and <eoi> only image codes make sense, so the sampler must never pick a "
    "word there. A logit of -inf has probability exactly 0 after the softmax, whatever the temperature and top-k "
    "do; 0 is just an ordinary logit.",
    "Worked sub-step: `out = torch.full_like(logits, float('-inf'))`, then copy the columns "
    "`image_offset:image_offset + n_codes` from logits into out.",
))
def _check_restrict(fn) -> str:
    x = _restrict_inputs()
    x_in = x.clone()
    got = require_tensor(fn(x_in, _OFFSET, _CODES), "only_image_tokens")
    if not torch.equal(x_in, x):
        raise CheckFailed("your function changed the logits it was given (an in-place fill): the caller may still "
                          "need them — return a new tensor (torch.full_like, .clone(), or masked_fill without _).")
    expected = _oracle_restrict(x, _OFFSET, _CODES)
    if got.shape == (3, _CODES) and close(got, x[:, _OFFSET:_OFFSET + _CODES]):
        raise CheckFailed("you returned only the image codes' columns (B, n_codes): keep all V columns, the others at "
                          "-inf, so that a sampled index is still a token id (an image code's id is image_offset + "
                          "code).")
    if got.shape != x.shape:
        raise CheckFailed(f"return logits of the same shape as the input, {tuple(x.shape)}; your answer returned "
                          f"{describe(got)}.")
    keep = torch.zeros(14, dtype=torch.bool)
    keep[_OFFSET:_OFFSET + _CODES] = True
    if torch.allclose(got.softmax(-1), expected.softmax(-1), atol=1e-6) and torch.equal(got[:, keep], x[:, keep]):
        if not torch.isinf(got[:, ~keep]).all():
            return ("image codes kept, every other token at a large negative logit — effectively 0 after the "
                    "softmax (-inf, as transformers' SuppressTokensLogitsProcessor uses, is exactly 0).")
        return ("the same logits as transformers' SuppressTokensLogitsProcessor applied to every token that is not an "
                "image code.")
    if _probabilities(got):
        raise CheckFailed("you returned probabilities: return logits (the sampler applies temperature, top-k and the "
                          "softmax after you), with -inf for the forbidden tokens.")
    if torch.equal(torch.isinf(got), keep.expand_as(got)):
        raise CheckFailed("you set the image codes to -inf and kept the text: it is the other way round — while "
                          "drawing only image codes are allowed.")
    lo = torch.zeros(14, dtype=torch.bool)
    for start, stop, hint in [(_OFFSET, _OFFSET + _CODES + 1, "one token too many: the range stops before "
                               "image_offset + n_codes (the token after the last code is not an image code)."),
                              (_OFFSET, _OFFSET + _CODES - 1, "the last image code is missing: keep image_offset … "
                               "image_offset + n_codes - 1, that is the slice image_offset:image_offset + n_codes."),
                              (_OFFSET + 1, _OFFSET + _CODES + 1, "shifted by one: image code 0 is token image_offset "
                               "itself.")]:
        lo.zero_()
        lo[start:stop] = True
        if torch.equal(torch.isfinite(got), lo.expand_as(got)):
            raise CheckFailed(hint)
    if torch.equal(got[:, keep], x[:, keep]) and torch.equal(got[:, ~keep], torch.zeros_like(got[:, ~keep])):
        raise CheckFailed("the forbidden tokens got a logit of 0: that is an ordinary logit (e⁰ = 1), so they can "
                          "still be drawn. Use -inf, whose probability is exactly 0.")
    if not torch.equal(got[:, keep], x[:, keep]):
        raise CheckFailed("the image codes' logits changed: keep them exactly as they are — the restriction only "
                          "removes the other tokens, the sampler does the rest.")
    raise Mismatch("your logits differ from transformers' SuppressTokensLogitsProcessor applied to every token that "
                   "is not an image code.")


def _probabilities(t: torch.Tensor) -> bool:
    """Rows of non-negative numbers summing to 1 (zeros allowed): a softmax, not logits."""
    return bool((t >= 0).all()) and torch.allclose(t.sum(-1), torch.ones(len(t)))


# --- 7.5 routing tokens to experts ---------------------------------------------------------------------------------

def _router_inputs() -> torch.Tensor:
    """Router logits (6, 5): 6 tokens, 5 experts, no ties, with one row whose best logit is negative and one whose
    scores are large — so that a softmax over the wrong set or the wrong axis shows."""
    g = torch.Generator().manual_seed(80)
    x = torch.randn(6, 5, generator=g) * 1.5
    x[2] -= 4.0
    x[4] *= 3.0
    return x


def _oracle_route(logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """transformers' MixtralTopKRouter with an identity weight, so that its router logits are ``logits``."""
    from transformers import MixtralConfig
    from transformers.models.mixtral.modeling_mixtral import MixtralTopKRouter

    n = logits.shape[-1]
    router = MixtralTopKRouter(MixtralConfig(hidden_size=n, num_local_experts=n, num_experts_per_tok=k))
    with torch.no_grad():
        router.weight.copy_(torch.eye(n))
        _, weights, experts = router(logits.clone())
    return weights, experts


def _routed(out, k: int, rows: int, n_experts: int = 5, what: str = "route") -> tuple[torch.Tensor, torch.Tensor]:
    if out is None or out is Ellipsis:
        from . import Unsolved

        raise Unsolved
    if not isinstance(out, tuple) or len(out) != 2 or not all(isinstance(o, torch.Tensor) for o in out):
        raise CheckFailed(f"{what} should return two tensors, (weights, experts); it returned {describe(out)}.")
    weights, experts = out
    if weights.dtype in (torch.int64, torch.int32) and experts.is_floating_point():
        raise CheckFailed("the two outputs are swapped: return (weights, experts) — the float mixing weights first, "
                          "the expert indices second.")
    if experts.is_floating_point():
        raise CheckFailed("experts should hold integer expert indices (as topk's .indices); it is "
                          f"{describe(experts)}.")
    if tuple(weights.shape) == (k, n_experts) and rows != k:
        raise CheckFailed(f"your outputs have shape (k, E) = {tuple(weights.shape)}: the top-k ran along the tokens "
                          "(dim=0), choosing the best tokens for each expert — choose each token's best experts, "
                          "along dim=-1, for (T, k).")
    for name, t in (("weights", weights), ("experts", experts)):
        if tuple(t.shape) != (rows, k):
            extra = ""
            if t.dim() == 2 and t.shape[-1] == n_experts:
                extra = " — one weight per *expert* (T, E) is a dense mixture: keep only the k chosen."
            elif t.dim() == 2:
                extra = " — use the k you are given, not a fixed number of experts."
            raise CheckFailed(f"{name} should have shape (T, k) = ({rows}, {k}); it is {describe(t)}{extra}")
    return weights, experts


def _by_expert(weights: torch.Tensor, experts: torch.Tensor) -> torch.Tensor:
    """Each token's weights as a dense (T, E) row, 0 for experts not chosen: compares answers in any order."""
    n = int(experts.max()) + 1 if experts.numel() else 1
    return torch.zeros(len(weights), max(n, 5)).scatter(1, experts.long(), weights.detach().float())


def _route_probes(fn, logits: torch.Tensor, k: int) -> list[Probe]:
    run = lambda x, kk=k: _routed(fn(x.clone(), kk), kk, len(x))  # noqa: E731
    dense = lambda x, kk=k: _by_expert(*run(x, kk))  # noqa: E731
    return [
        Probe("sums to one", lambda: torch.allclose(run(logits)[0].sum(-1), torch.ones(len(logits)), atol=1e-5),
              "each token's k weights should sum to 1: they mix the chosen experts' outputs, so softmax over the k "
              "chosen scores (or renormalise)."),
        Probe("shift", lambda: close(dense(logits + 3.0), dense(logits), atol=1e-5),
              "adding the same number to all of a token's scores should change nothing (a softmax does not see it): "
              "use a softmax of the chosen scores, not the raw scores or their share of the sum."),
        Probe("each token alone", lambda: close(dense(logits[3:4]), dense(logits)[3:4], atol=1e-5),
              "each token is routed on its own: take the top-k and the softmax along the experts' axis (dim=-1), "
              "never across tokens."),
        Probe("top-1", lambda: close(dense(logits, 1), F.one_hot(logits.argmax(-1), 5).float(), atol=1e-5),
              "with k = 1 each token should go to its highest-scoring expert with weight 1 — use the k you are "
              "given."),
    ]


@register("7.5", "routing tokens to experts", umoe.route, hints=(
    "Each token keeps its k best-scoring experts; their weights are a softmax over those k scores only.",
    "Section 5, 'Mixture of experts': the router scores every expert (T, E); a token's output is Σ over its k "
    "chosen experts of weight × expert(token), so the k weights must be positive, sum to 1 and grow with the "
    "score — and stay differentiable, or the router never learns.",
    "Worked sub-step: `values, indices = router_logits.topk(k, dim=-1)` gives the chosen scores and their indices; "
    "what is left is one softmax.",
))
def _check_route(fn) -> str:
    logits = _router_inputs()
    leaf = logits.clone().requires_grad_(True)
    x_in = leaf * 1.0                           # not a leaf, so that an in-place edit runs and can be named
    weights, experts = _routed(fn(x_in, 2), 2, len(logits))
    if not torch.equal(x_in.detach(), logits):
        raise CheckFailed("your function changed the router logits it was given (an in-place operation): the router "
                          "needs them afterwards for the balancing loss — compute new tensors.")
    want_w, want_e = _oracle_route(logits, 2)
    got_dense, want_dense = _by_expert(weights, experts), _by_expert(want_w, want_e)
    if not torch.equal(experts.sort(-1).values, want_e.sort(-1).values):
        if torch.equal(experts.sort(-1).values, logits.topk(2, -1, largest=False).indices.sort(-1).values):
            raise CheckFailed("you chose the lowest-scoring experts: topk takes the largest by default — "
                              "largest=False (or sorting ascending) picks the worst.")
        if torch.equal(experts.sort(-1).values, logits.softmax(0).topk(2, -1).indices.sort(-1).values):
            raise CheckFailed("you took a softmax across the tokens (dim=0) before choosing: each token's experts "
                              "are chosen from its own row of scores, dim=-1.")
        probe = broken(_route_probes(fn, logits, 2))
        raise CheckFailed(probe.hint if probe else "your experts are not each token's k highest-scoring ones "
                          "(MixtralTopKRouter's choice).")
    if close(got_dense, want_dense, atol=1e-5):
        if weights.requires_grad:
            (grad,) = torch.autograd.grad((weights * torch.arange(1.0, 3.0)).sum(), leaf, allow_unused=True)
        else:
            grad = None
        if grad is None or grad.abs().sum() == 0:
            raise CheckFailed("your weights carry no gradient back to the router logits (.detach(), .item(), numpy "
                              "or a no_grad block?): the router only learns through them.")
        require_properties(_route_probes(fn, logits, 2))
        return ("the same experts and weights as transformers' MixtralTopKRouter (softmax over all experts, top-k, "
                "renormalised — the same numbers as a softmax over the chosen scores).")
    top = logits.topk(2, -1)
    wrong = {
        "your weights are the softmax over *all* experts, cut to the chosen k: they no longer sum to 1 — take the "
        "softmax over the k chosen scores (or renormalise the kept probabilities).":
            _by_expert(logits.softmax(-1).gather(1, top.indices), top.indices),
        "your weights are the raw router scores: a softmax over the chosen scores turns them into positive weights "
        "that sum to 1.": _by_expert(top.values, top.indices),
        "every chosen expert got the same weight 1/k: then the weights do not depend on the scores and the router "
        "gets no gradient — use a softmax over the chosen scores.":
            _by_expert(torch.full((6, 2), 0.5), top.indices),
        "the weights sit on the wrong experts: weights[i, j] must belong to experts[i, j] — keep topk's values and "
        "indices in the same order.": _by_expert(top.values.softmax(-1).flip(-1), top.indices),
        "the softmax ran across the tokens (dim=0): each token's weights come from its own k scores, dim=-1.":
            _by_expert(top.values.softmax(0), top.indices),
    }
    for hint, w in wrong.items():
        if close(got_dense, w, atol=1e-5):
            raise CheckFailed(hint)
    probe = broken(_route_probes(fn, logits, 2))
    if probe is not None:
        raise CheckFailed(probe.hint)
    raise Mismatch("your weights differ from transformers' MixtralTopKRouter's.")


# --- 7.6 the load-balancing loss -----------------------------------------------------------------------------------

def _balance_inputs() -> torch.Tensor:
    """Router logits (40, 4) leaning towards expert 0, so that the counts and the mean probabilities both differ
    from uniform (and from each other)."""
    g = torch.Generator().manual_seed(81)
    x = torch.randn(40, 4, generator=g)
    x[:, 0] += 0.8
    x[:, 3] -= 0.5
    return x


def _oracle_balance(logits: torch.Tensor, k: int) -> torch.Tensor:
    from transformers.models.mixtral.modeling_mixtral import load_balancing_loss_func

    return load_balancing_loss_func((logits,), logits.shape[-1], k)


def _scalar(out, what: str = "load_balancing_loss") -> torch.Tensor:
    if out is None or out is Ellipsis:
        from . import Unsolved

        raise Unsolved
    if isinstance(out, numbers.Number):
        raise CheckFailed(f"{what} returned a Python number ({out!r}): return a 0-dimensional tensor, so that the "
                          "loss can be backpropagated into the router.")
    if not isinstance(out, torch.Tensor) or out.numel() != 1:
        raise CheckFailed(f"{what} should return one number, a 0-dimensional tensor; it returned {describe(out)}.")
    return out.reshape(())


def _balance_variants(logits: torch.Tensor, k: int) -> dict[str, torch.Tensor]:
    """Known wrong ways, computed, by hint."""
    n_tokens, n = logits.shape
    p = logits.softmax(-1)
    counts = F.one_hot(p.topk(k, -1).indices, n).sum((0, 1)).float()
    counts1 = F.one_hot(p.argmax(-1), n).sum(0).float()
    f, big_p = counts / n_tokens, p.mean(0)
    topw = p.topk(k, -1)
    renorm = torch.zeros_like(p).scatter(1, topw.indices, topw.values / topw.values.sum(-1, keepdim=True)).mean(0)
    return {
        "the factor E (the number of experts) is missing, or you averaged over the experts instead of summing: "
        "E · Σ_i f_i · P_i equals k when the routing is even, whatever E is.": (f * big_p).sum(),
        "f_i is the fraction of the T *tokens* that chose expert i among their k — divide the count by T, not by "
        "T·k (so the f_i sum to k), as transformers' Mixtral loss does.":
            n * (counts / (n_tokens * k) * big_p).sum(),
        "T times too large: f_i is a fraction (divide expert i's count by T, the number of tokens) and P_i a mean "
        "over the tokens, not a sum.": n * (counts * big_p).sum(),
        "you averaged f · p token by token (a mean of products): the loss multiplies two means — the fraction of "
        "tokens sent to expert i and the mean probability of expert i — and then sums over experts.":
            n * (F.one_hot(p.topk(k, -1).indices, n).sum(1).float() * p).sum(-1).mean(),
        "f_i counted only each token's first choice: with top-k routing, count all k chosen experts.":
            n * (counts1 / n_tokens * big_p).sum(),
        "f_i should be a count — the share of the token slots sent to expert i — not the mean probability: with "
        "both factors soft the loss only asks the probabilities to be even, not the routing.":
            n * (big_p * big_p).sum(),
        "P_i is the mean of the *full* softmax over all E experts, not of the renormalised top-k weights.":
            n * (f * renorm).sum(),
        "P_i comes from the softmax probabilities, not the raw router logits.": n * (f * logits.mean(0)).sum(),
        "the softmax ran across the tokens (dim=0): each token's probabilities come from its own row, dim=-1.":
            n * (F.one_hot(logits.softmax(0).topk(k, -1).indices, n).sum((0, 1)).float() / n_tokens
                 * logits.softmax(0).mean(0)).sum(),
    }


def _balance_probes(fn, logits: torch.Tensor, k: int) -> list[Probe]:
    run = lambda x, kk=k: float(_scalar(fn(x.clone(), kk)).detach())  # noqa: E731
    n = logits.shape[-1]
    even = torch.stack([torch.roll(torch.tensor([2.0, 1.0, 0.0, -1.0]), s) for s in range(n)] * 3)

    def collapsed() -> bool:
        one = torch.zeros(12, n)
        one[:, 0] = 30.0
        return math.isclose(run(one, 1), n, rel_tol=1e-3)

    return [
        Probe("even routing", lambda: math.isclose(run(even, 1), 1.0, rel_tol=1e-4) and
              math.isclose(run(even, 2), 2.0, rel_tol=1e-4),
              "when every expert gets the same share of tokens and the same mean probability the loss should be k "
              "(1 for top-1): E · Σ_i (k/E) · (1/E) = k."),
        Probe("collapse", collapsed,
              "with top-1 routing, when every token goes to expert 0 with probability ≈ 1 the loss should be ≈ E, its "
              "maximum: f_0 = 1 and P_0 ≈ 1."),
        Probe("token order", lambda: math.isclose(run(logits.flip(0)), run(logits), rel_tol=1e-5),
              "the order of the tokens should not matter: f and P are shares and means over all tokens."),
    ]


@register("7.6", "the load-balancing loss", umoe.load_balancing_loss, builds_on=("7.5",), hints=(
    "Two shares per expert — how many token slots it received, and how much probability the router gave it on "
    "average — multiplied, summed, times E.",
    "Section 5, 'Mixture of experts': f_i = the fraction of the T tokens that have expert i among their k choices "
    "(the f_i sum to k) is a count, with no gradient; P_i = mean over tokens of softmax(router_logits)[:, i] "
    "carries the gradient. Switch Transformer's loss is E · Σ_i f_i · P_i (Fedus et al., 2021, equation 4).",
    "Worked sub-step: `probs = router_logits.softmax(-1)`; `F.one_hot(probs.topk(k, -1).indices, E)` is (T, k, E) "
    "— sum it over tokens and slots to count each expert's tokens.",
))
def _check_balance(fn) -> str:
    logits = _balance_inputs()
    leaf = logits.clone().requires_grad_(True)
    x_in = leaf * 1.0
    got = _scalar(fn(x_in, 2))
    if not torch.equal(x_in.detach(), logits):
        raise CheckFailed("your function changed the router logits it was given (an in-place operation): compute "
                          "new tensors.")
    x_ref = logits.clone().requires_grad_(True)
    expected = _oracle_balance(x_ref, 2)
    if math.isclose(float(got.detach()), float(expected.detach()), rel_tol=1e-4):
        if not got.requires_grad:
            raise CheckFailed("the right value, but it carries no gradient (.detach(), .item(), numpy, or counts "
                              "only?): the loss must reach the router through P_i, the mean probabilities.")
        (g_got,) = torch.autograd.grad(got, leaf)
        (g_ref,) = torch.autograd.grad(expected, x_ref)
        if not close(g_got, g_ref, atol=1e-5):
            raise CheckFailed("the right value, but the gradient differs from transformers' Mixtral loss: the counts "
                              "f_i are constants (no gradient through the top-k choice); only P_i, the mean softmax "
                              "probability, is differentiated.")
        require_properties(_balance_probes(fn, logits, 2))
        return (f"loss {float(got.detach()):.4f}, the same value and gradient as transformers' "
                "load_balancing_loss_func (Mixtral); it is k = 2 when routing is even and grows towards E = 4 as one "
                "expert takes all the probability.")
    for hint, wrong in _balance_variants(logits, 2).items():
        if math.isclose(float(got.detach()), float(wrong), rel_tol=1e-4):
            raise CheckFailed(hint)
    probe = broken(_balance_probes(fn, logits, 2))
    if probe is not None:
        raise CheckFailed(probe.hint)
    raise Mismatch(f"your loss is {float(got.detach()):.4g}; transformers' load_balancing_loss_func gives "
                   f"{float(expected.detach()):.4g}.")


# --- 7.7 and 7.8 the forward process and the clean image -----------------------------------------------------------

def _diffusion_inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images x0 (3, 2, 4, 4) in [-1, 1], noise like them, timesteps (3,) = 0, 7, 19 and a short schedule of 20 large
    betas, so that every mistake in the schedule shows."""
    g = torch.Generator().manual_seed(78)
    x0 = torch.rand(3, 2, 4, 4, generator=g) * 2 - 1
    noise = torch.randn(3, 2, 4, 4, generator=g)
    return x0, noise, torch.tensor([0, 7, 19]), torch.linspace(0.01, 0.3, 20)


def _scheduler_for(betas: torch.Tensor):
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=len(betas), trained_betas=betas.numpy(), prediction_type="epsilon",
                         clip_sample=False)


def _schedule_variants(betas: torch.Tensor) -> dict[str, torch.Tensor]:
    """Wrong ᾱ schedules a learner writes, by name."""
    alphas = 1 - betas
    abar = torch.cumprod(alphas, 0)
    return {"alpha": alphas, "cumprod of betas": torch.cumprod(betas, 0),
            "one step late": torch.cat([abar[1:], abar[-1:] * alphas[-1]]),
            "one step early": torch.cat([torch.ones(1), abar[:-1]]), "cumsum": 1 - torch.cumsum(betas, 0)}


def _b(values: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return values[t].view(-1, 1, 1, 1)


def _noise_probes(fn, x0, noise, t, betas) -> list[Probe]:
    run = lambda a, b, c: require_tensor(fn(a.clone(), b.clone(), c.clone(), betas.clone()), "add_noise")  # noqa: E731
    abar = torch.cumprod(1 - betas, 0)
    return [
        Probe("no noise", lambda: close(run(x0, torch.zeros_like(noise), t), _b(abar.sqrt(), t) * x0),
              "with zero noise, x_t should be the clean image shrunk by √ᾱ_t — check the factor on x₀: the square root "
              "of the *cumulative* product of (1 − β) up to and including step t."),
        Probe("pure noise", lambda: close(run(torch.zeros_like(x0), noise, t), _b((1 - abar).sqrt(), t) * noise),
              "with a black image (x₀ = 0), x_t should be the noise scaled by √(1 − ᾱ_t), so that x_t keeps unit "
              "variance: check the factor on the noise."),
        Probe("each its own t", lambda: close(run(x0[1:2], noise[1:2], t[1:2]), run(x0, noise, t)[1:2]),
              "each image of the batch has its own timestep: index ᾱ with the whole vector t and reshape it to (B, 1, "
              "1, 1) to broadcast over the pixels."),
    ]


@register("7.7", "the forward process of diffusion", udiffusion.add_noise, hints=(
    "Two numbers per image, both from ᾱ_t: one multiplies the clean image, one the noise.",
    "Section 6, 'The other road: diffusion': ᾱ_t = ∏_{s ≤ t} (1 − β_s) — a cumulative product over the schedule, "
    "with timesteps counted from 0 as in diffusers — and x_t = √ᾱ_t · x₀ + √(1 − ᾱ_t) · ε (Ho et al., 2020, "
    "equation 4).",
    "Worked sub-step: `abar = torch.cumprod(1 - betas, dim=0)[t].view(-1, 1, 1, 1)` gives one ᾱ per image, shaped "
    "to broadcast over (B, C, H, W).",
))
def _check_add_noise(fn) -> str:
    x0, noise, t, betas = _diffusion_inputs()
    ins = [x0.clone(), noise.clone(), t.clone(), betas.clone()]
    got = require_tensor(fn(*ins), "add_noise")
    if not all(torch.equal(a, b) for a, b in zip(ins, (x0, noise, t, betas))):
        raise CheckFailed("your function changed one of the tensors it was given (an in-place operation): compute a "
                          "new tensor.")
    expected = _scheduler_for(betas).add_noise(x0, noise, t)
    if torch.isnan(got).any():
        raise CheckFailed("your x_t holds nan: a square root of a negative number? ᾱ_t must stay between 0 and 1 — "
                          "the cumulative product of (1 − β_s), never 1 − Σβ (which goes below 0 on a long schedule).")
    abar = torch.cumprod(1 - betas, 0)
    mistakes = {}
    names = {"alpha": "you used α_t = 1 − β_t of the step alone: the forward jump from x₀ to x_t needs ᾱ_t, the "
                      "*cumulative* product of (1 − β_s) over every step up to t.",
             "cumprod of betas": "you multiplied the betas: ᾱ_t is the cumulative product of (1 − β_s), the share of "
                                 "signal each step keeps.",
             "one step late": "off by one: timesteps count from 0 (diffusers' convention), so ᾱ_0 = 1 − β_0 — the "
                              "product includes step t itself and nothing after it.",
             "one step early": "off by one: ᾱ_t includes step t itself — torch.cumprod(1 - betas, 0)[t], not the "
                               "product of the steps before t.",
             "cumsum": "1 − Σβ is only a first-order approximation of ∏(1 − β): use torch.cumprod."}
    for key, wrong in _schedule_variants(betas).items():
        a = _b(wrong, t)
        mistakes[names[key]] = a.sqrt() * x0 + (1 - a).sqrt() * noise
    a = _b(abar, t)
    mistakes.update({
        "no square roots: the means and variances are √ᾱ_t and (1 − ᾱ_t); the factors that multiply x₀ and ε are "
        "their square roots, √ᾱ_t and √(1 − ᾱ_t).": a * x0 + (1 - a) * noise,
        "the noise's factor lacks its square root: √(1 − ᾱ_t) · ε, so that x_t keeps unit variance.":
            a.sqrt() * x0 + (1 - a) * noise,
        "the image's factor lacks its square root: √ᾱ_t · x₀.": a * x0 + (1 - a).sqrt() * noise,
        "the clean image and the noise are swapped: √ᾱ_t multiplies x₀ (ᾱ_0 ≈ 1: almost no noise at the start).":
            a.sqrt() * noise + (1 - a).sqrt() * x0,
        "x₀ is not shrunk: DDPM is variance-preserving, x_t = √ᾱ_t · x₀ + √(1 − ᾱ_t) · ε — adding noise to the whole "
        "image (x₀ + σ ε) is the variance-exploding family (score SDEs), not DDPM.": x0 + (1 - a).sqrt() * noise,
        "every image got the first image's timestep: index ᾱ with the whole vector t (one timestep per image).":
            _b(abar, t[:1].expand(3)).sqrt() * x0 + (1 - _b(abar, t[:1].expand(3))).sqrt() * noise,
    })
    diagnose(got, expected, mistakes, "your x_t differs from DDPMScheduler.add_noise's.",
             probes=_noise_probes(fn, x0, noise, t, betas))
    require_properties(_noise_probes(fn, x0, noise, t, betas))
    return (f"the same x_t as diffusers' DDPMScheduler.add_noise; at t = 19 of this short schedule √ᾱ = "
            f"{abar[19].sqrt():.3f}: the image is almost gone.")


@register("7.8", "the clean image from the noise", udiffusion.predict_x0, builds_on=("7.7",), hints=(
    "Solve the forward process's line for x₀.",
    "Section 6, 'The other road: diffusion': x_t = √ᾱ_t · x₀ + √(1 − ᾱ_t) · ε, so x₀ = (x_t − √(1 − ᾱ_t) · ε) / "
    "√ᾱ_t; a sampler puts the network's ε̂ in place of ε (DDPM's x̂₀, equation 15). No clipping here.",
    "Worked sub-step: `abar = torch.cumprod(1 - betas, dim=0)[t].view(-1, 1, 1, 1)`; then one line with "
    "`(1 - abar).sqrt()` and a division by `abar.sqrt()`.",
))
def _check_predict_x0(fn) -> str:
    x0, noise, t, betas = _diffusion_inputs()
    x_t = torch.cumprod(1 - betas, 0)[t].view(-1, 1, 1, 1)
    x_t = x_t.sqrt() * x0 + (1 - x_t).sqrt() * noise
    g = torch.Generator().manual_seed(79)
    eps_hat = noise + 0.3 * torch.randn(noise.shape, generator=g)      # an imperfect prediction, as a network gives
    ins = [x_t.clone(), eps_hat.clone(), t.clone(), betas.clone()]
    got = require_tensor(fn(*ins), "predict_x0")
    if not all(torch.equal(a, b) for a, b in zip(ins, (x_t, eps_hat, t, betas))):
        raise CheckFailed("your function changed one of the tensors it was given (an in-place operation): compute a "
                          "new tensor.")
    sched = _scheduler_for(betas)
    expected = torch.cat([sched.step(eps_hat[i:i + 1], int(t[i]), x_t[i:i + 1]).pred_original_sample
                          for i in range(len(t))])
    abar = torch.cumprod(1 - betas, 0)
    a = _b(abar, t)
    mistakes = {
        "you did not divide by √ᾱ_t: the image's share of x_t is √ᾱ_t · x₀, so x₀ = (x_t − √(1 − ᾱ_t) ε̂) / √ᾱ_t.":
            x_t - (1 - a).sqrt() * eps_hat,
        "you subtracted ε̂ without its factor √(1 − ᾱ_t): x₀ = (x_t − √(1 − ᾱ_t) ε̂) / √ᾱ_t.":
            (x_t - eps_hat) / a.sqrt(),
        "you multiplied by √ᾱ_t instead of dividing: x₀ = (x_t − √(1 − ᾱ_t) ε̂) / √ᾱ_t.":
            (x_t - (1 - a).sqrt() * eps_hat) * a.sqrt(),
        "no square roots: x₀ = (x_t − √(1 − ᾱ_t) ε̂) / √ᾱ_t — ᾱ and 1 − ᾱ are variances, their roots the factors.":
            (x_t - (1 - a) * eps_hat) / a,
        "you clipped x̂₀ to [-1, 1]: samplers often do (DDPMScheduler's clip_sample), but this exercise asks for the "
        "plain inverse — clipping hides how far off a bad noise estimate lands.":
            ((x_t - (1 - a).sqrt() * eps_hat) / a.sqrt()).clamp(-1, 1),
    }
    for key, wrong in _schedule_variants(betas).items():
        w = _b(wrong, t)
        mistakes[f"the schedule is off — you used {'α_t of the step alone' if key == 'alpha' else key}: x₀ needs ᾱ_t "
                 "= torch.cumprod(1 - betas, 0)[t], as in Exercise 7.7."] = (x_t - (1 - w).sqrt() * eps_hat) / w.sqrt()

    def inverts() -> bool:
        x = require_tensor(fn(x_t.clone(), noise.clone(), t.clone(), betas.clone()), "predict_x0")
        return close(x, x0, atol=1e-4)

    probes = [Probe("each its own t", lambda: close(require_tensor(fn(x_t[1:2], eps_hat[1:2], t[1:2], betas), "x"),
                                                     got[1:2]),
                    "each image has its own timestep: index ᾱ with the whole vector t, shaped (B, 1, 1, 1)."),
              Probe("undoes the forward process", inverts,
                    "given the true noise, x̂₀ should be exactly the clean image that went in: solve x_t = √ᾱ_t x₀ + "
                    "√(1 − ᾱ_t) ε for x₀.")]
    diagnose(got, expected, mistakes, "your x̂₀ differs from DDPMScheduler.step's pred_original_sample.", probes=probes)
    require_properties(probes)
    err = [(got[i] - x0[i]).abs().mean().item() for i in range(3)]
    return (f"the same x̂₀ as diffusers' DDPMScheduler.step; with a noise estimate off by 0.3, x̂₀ is off by "
            f"{err[0]:.2f} at t = 0 and {err[2]:.2f} at t = 19 — the error is amplified by √(1 − ᾱ)/√ᾱ.")


# --- 7.9 classifier-free guidance ----------------------------------------------------------------------------------

def _guidance_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    """Two noise estimates (3, 2, 4, 4), conditional and unconditional, that differ everywhere."""
    g = torch.Generator().manual_seed(82)
    return torch.randn(3, 2, 4, 4, generator=g), torch.randn(3, 2, 4, 4, generator=g)


def _oracle_guidance(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    from diffusers.guiders import ClassifierFreeGuidance

    return ClassifierFreeGuidance(guidance_scale=scale).forward(cond.clone(), uncond.clone()).pred


def _guidance_probes(fn, cond: torch.Tensor, uncond: torch.Tensor) -> list[Probe]:
    run = lambda w, c=cond, u=uncond: require_tensor(fn(c.clone(), u.clone(), w), "guided_noise")  # noqa: E731
    return [
        Probe("w = 1", lambda: close(run(1.0), cond),
              "with w = 1 guidance should return the conditional estimate itself (diffusers' convention: w = 1 is "
              "the plain conditional model)."),
        Probe("w = 0", lambda: close(run(0.0), uncond),
              "with w = 0 guidance should return the unconditional estimate: the condition is switched off."),
        Probe("linear in w", lambda: close(run(5.0) - run(3.0), 2 * (cond - uncond), atol=1e-4),
              "each unit of w should add one more (ε_c − ε_∅): guidance extrapolates along the line from the "
              "unconditional to the conditional estimate."),
        Probe("elementwise", lambda: close(run(3.0, cond[1:2], uncond[1:2]), run(3.0)[1:2]),
              "guidance is elementwise: each example's result depends on its own two estimates only."),
    ]


@register("7.9", "classifier-free guidance", udiffusion.guided_noise, hints=(
    "Start from the unconditional estimate and walk w times the step that leads to the conditional one.",
    "Section 6, 'Classifier-free guidance': one network predicts the noise twice, with the condition (ε_c) and with "
    "the empty condition (ε_∅); the guided estimate extrapolates from ε_∅ through ε_c — diffusers' convention, where "
    "w = 1 gives ε_c back and w = 0 gives ε_∅.",
    "Worked sub-step: the direction the condition adds is `eps_cond - eps_uncond`; scale it by w and add it to one "
    "of the two estimates — which one makes w = 1 return eps_cond?",
))
def _check_guidance(fn) -> str:
    cond, uncond = _guidance_inputs()
    ins = [cond.clone(), uncond.clone()]
    got = require_tensor(fn(ins[0], ins[1], 3.0), "guided_noise")
    if not (torch.equal(ins[0], cond) and torch.equal(ins[1], uncond)):
        raise CheckFailed("your function changed one of the estimates it was given (an in-place operation): the "
                          "sampler may still need them — compute a new tensor.")
    expected = _oracle_guidance(cond, uncond, 3.0)
    w = 3.0
    mistakes = {
        "you used the paper's formulation, ε_c + w (ε_c − ε_∅) (Ho & Salimans' (1 + w) ε_c − w ε_∅): it is the same "
        "family with w shifted by one, but in diffusers' convention — the one asked for — w = 1 must return ε_c: "
        "start from ε_∅.": cond + w * (cond - uncond),
        "the direction is reversed: the guidance pushes away from the condition. Step along ε_c − ε_∅, from the "
        "unconditional estimate towards the conditional one.": uncond + w * (uncond - cond),
        "the two estimates are swapped: start from the unconditional one, ε_∅, and add w (ε_c − ε_∅).":
            cond + w * (uncond - cond),
        "only the difference is left: add w (ε_c − ε_∅) to the unconditional estimate ε_∅ — the difference alone is "
        "not a noise estimate.": w * (cond - uncond),
        "you mixed the two without subtracting: ε̃ = ε_∅ + w (ε_c − ε_∅) = w ε_c + (1 − w) ε_∅; the weights of the "
        "two estimates sum to 1.": w * cond + uncond,
        "w is not used: the guidance weight sets how far past the conditional estimate the result goes.":
            (cond + uncond) / 2,
        "w multiplies only the difference (ε_c − ε_∅), not the whole estimate — check the parentheses: ε_∅ + w · "
        "(ε_c − ε_∅).": w * (uncond + (cond - uncond)),
        "you returned the conditional estimate unchanged: w is not used — guidance moves w times the difference "
        "(ε_c − ε_∅) away from ε_∅.": cond.clone(),
    }
    probes = _guidance_probes(fn, cond, uncond)
    diagnose(got, expected, mistakes, "your guided estimate differs from diffusers' ClassifierFreeGuidance.",
             probes=probes)
    require_properties(probes)
    return ("the same estimate as diffusers' ClassifierFreeGuidance (guidance_scale = 3): ε_∅ + w (ε_c − ε_∅); w = 1 "
            "gives the conditional model back.")


# --- 7.10 Transfusion's attention mask -----------------------------------------------------------------------------

def _segment_inputs() -> torch.Tensor:
    """Segment labels (3, 12): text, an image, text, a second image, text; an image first, then a second one right
    after it, then text (image → text, two images adjacent); text only — so that "same image" and "any image", and
    text before and after an image, all differ."""
    return torch.tensor([[0, 0, 1, 1, 1, 0, 0, 2, 2, 2, 0, 0],
                         [0, 0, 1, 1, 1, 1, 2, 2, 0, 0, 0, 0],
                         [0] * 12])


def _oracle_mask(segments: torch.Tensor) -> torch.Tensor:
    """PyTorch's FlexAttention ``create_mask`` with Transfusion's mask_mod (causal, or the same image), the way
    attention kernels take the rule — written per (query, key) pair, independently of the reference."""
    from torch.nn.attention.flex_attention import create_mask

    def mask_mod(b, h, q, kv):
        return (q >= kv) | ((segments[b, q] == segments[b, kv]) & (segments[b, q] > 0))

    b, t = segments.shape
    return create_mask(mask_mod, b, None, t, t, device="cpu")[:, 0]


def _same_image(segments: torch.Tensor) -> torch.Tensor:
    """(B, T, T): True where query i and key j lie in the same image."""
    return (segments[:, :, None] == segments[:, None, :]) & (segments[:, :, None] > 0)


def _mask_variants(segments: torch.Tensor) -> dict[str, torch.Tensor]:
    t = segments.shape[1]
    causal = torch.ones(t, t, dtype=torch.bool).tril().expand(len(segments), t, t)
    qi, kj = segments[:, :, None], segments[:, None, :]
    same = _same_image(segments)
    any_image = (qi > 0) & (kj > 0)
    strict = torch.ones(t, t, dtype=torch.bool).tril(-1)
    return {
        "this is the plain causal mask of a language model (Chameleon's): inside an image, a position must also see "
        "the later positions of the same image — Transfusion denoises an image all at once, not left to right.": causal,
        "every position sees every other one (a bidirectional encoder's mask): a word must not see the words — or "
        "the image — that come after it, or the next-token loss is trivial.": torch.ones_like(causal),
        "positions of one image also see a *later* image: 'bidirectional' holds only inside the same image — compare "
        "the segment labels (segments[i] == segments[j] > 0), not just 'both are image positions'.": causal | any_image,
        "text positions see later text: the segment label 0 marks text, and text is not one block — the "
        "bidirectional rule is only for labels > 0.": causal | (qi == kj),
        "image positions see only their own image, not the caption before it: keep the causal part for every "
        "position — an image drawn from a caption must read the caption.":
            (causal & (qi == 0)) | same,
        "the mask is transposed: position i may attend to j when j ≤ i (keys in the past), not j ≥ i. Check "
        "mask[b, i, j] with i the query row and j the key column.": causal.transpose(1, 2) | same,
        "a position cannot see itself: the causal part includes the diagonal (j ≤ i, tril with diagonal 0).":
            strict | same,
        "you returned the positions where attention is *forbidden*: True must mean 'may attend' (as in "
        "scaled_dot_product_attention's boolean masks and FlexAttention's mask_mod).": ~(causal | same),
    }


def _mask_probes(fn, segments: torch.Tensor) -> list[Probe]:
    run = lambda s: require_tensor(fn(s.clone()), "transfusion_mask").bool()  # noqa: E731
    t = segments.shape[1]
    causal = torch.ones(t, t, dtype=torch.bool).tril()
    single = torch.tensor([[0, 1, 1, 1, 0, 0]])
    return [
        Probe("text only is causal", lambda: torch.equal(run(torch.zeros(1, t, dtype=torch.long))[0], causal),
              "with no image at all (every label 0) the mask should be the plain causal mask (lower triangle with "
              "the diagonal)."),
        Probe("an image is one block", lambda: bool(run(single)[0, 1:4, 1:4].all()),
              "the positions of one image should all see each other, in both directions."),
        Probe("nothing sees the future outside an image", lambda: not bool(run(single)[0, 0, 1:].any()),
              "a text position before an image should see nothing after itself — not the image, not later words."),
        Probe("the future only inside an image",
              lambda: not bool((run(segments) & ~causal & ~_same_image(segments)).any()),
              "a position may see a later position only when both lie in the same image: nothing after an image's "
              "last position — not the next word, not the next image — is visible from inside it."),
        Probe("rows independent", lambda: torch.equal(run(segments[1:2])[0], run(segments)[1]),
              "each sequence's mask should depend on its own segment labels only."),
        Probe("labels are names", lambda: torch.equal(run(segments * 7), run(segments)),
              "only whether two positions share an image matters, not the number of the image: relabelling the "
              "images (1 → 7, 2 → 14) should give the same mask."),
    ]


@register("7.10", "Transfusion's attention mask", utransfusion.transfusion_mask, hints=(
    "Start from the causal mask, then also allow every pair of positions that lie in the same image.",
    "Section 7, 'Transfusion': words are predicted left to right, so they attend causally; an image is denoised all "
    "at once, so its positions see each other in both directions — but no position ever sees a later image or "
    "later words. The mask is True where attention is allowed.",
    "Worked sub-step: broadcasting compares every pair at once — for one sequence's labels s = torch.tensor([0, 1, "
    "1]), `s[:, None] == s[None, :]` is the 3 × 3 table of pairs with equal labels. Which of those pairs are not an "
    "image, and what must be added for the words?",
))
def _check_mask(fn) -> str:
    segments = _segment_inputs()
    given = segments.clone()
    got = require_tensor(fn(given), "transfusion_mask")
    if not torch.equal(given, segments):
        raise CheckFailed("your function changed the segment labels it was given (an in-place operation): compute a "
                          "new tensor.")
    expected = _oracle_mask(segments)
    if got.dtype.is_floating_point and got.shape == expected.shape:
        if torch.equal(got == 0, expected) and bool((got[~expected] < -1e30).all()):  # -inf or finfo.min
            raise CheckFailed("you returned an additive mask (0 where allowed, a huge negative number where not): "
                              "right in spirit, but return booleans, True where a position may attend (the model "
                              "turns them into the additive form).")
    if got.dim() == 2 and got.shape == expected.shape[1:]:
        raise CheckFailed("return one mask per sequence, shape (B, T, T): every sequence has its own images in its "
                          "own places.")
    if got.dtype != torch.bool and set(got.unique().tolist()) <= {0, 1}:
        got = got.bool()  # 0/1 integers say the same thing; compared as booleans
    probes = _mask_probes(fn, segments)
    diagnose(got, expected, _mask_variants(segments),
             "your mask differs from FlexAttention's create_mask with Transfusion's rule (causal, or same image).",
             probes=probes)
    if got.dtype != torch.bool:
        raise CheckFailed(f"the right pattern, but return a boolean tensor (dtype torch.bool), not {got.dtype}.")
    require_properties(probes)
    return ("the same mask as FlexAttention's create_mask with Transfusion's rule: causal across the sequence, "
            "bidirectional inside each image, never into a later image.")
