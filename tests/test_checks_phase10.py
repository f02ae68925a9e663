"""Unit tests of the Phase 10 checks: the references pass, starters read as unsolved, typical mistakes are named."""
import numpy as np
import pytest
import torch

from tests.checks_testing import failed_with
from utils.checks import evaluate, reference

EXERCISES = ["10.1", "10.2", "10.3", "10.4", "10.5", "10.6", "10.7", "10.8", "10.9"]


def _passes(exercise, answer):
    result = evaluate(exercise, answer)
    assert result.status == "passed", result.message


def _starter(*args, **kwargs):
    ...


@pytest.mark.parametrize("exercise", EXERCISES)
def test_the_starter_reads_as_unsolved(exercise):
    assert evaluate(exercise, _starter).status == "unsolved"


@pytest.mark.parametrize("exercise", EXERCISES)
def test_the_reference_passes(exercise):
    _passes(exercise, reference(exercise))


# --- 10.1 a continuous action to bins ------------------------------------------------------------------------------

def bins_torch(actions, n_bins=256, low=-1.0, high=1.0):  # torch, bucketize on the inner edges: right
    a = torch.as_tensor(np.asarray(actions, dtype=np.float64)).clamp(low, high)
    edges = torch.linspace(low, high, n_bins + 1, dtype=torch.float64)[1:-1]
    return torch.bucketize(a, edges, right=True)


def bins_loop(actions, n_bins=256, low=-1.0, high=1.0):  # a Python loop over the flattened values: right
    a = np.asarray(actions, dtype=float)
    w = (high - low) / n_bins
    out = [min(n_bins - 1, int((min(max(v, low), high) - low) // w)) for v in a.ravel()]
    return np.array(out, dtype=np.int64).reshape(a.shape)


def bins_no_clip(actions, n_bins=256, low=-1.0, high=1.0):
    return np.floor((np.asarray(actions) - low) / (high - low) * n_bins).astype(np.int64)


def bins_high_overflows(actions, n_bins=256, low=-1.0, high=1.0):
    a = np.clip(actions, low, high)
    return np.floor((a - low) / (high - low) * n_bins).astype(np.int64)


def bins_low_unclipped(actions, n_bins=256, low=-1.0, high=1.0):
    return np.minimum(np.floor((np.asarray(actions) - low) / (high - low) * n_bins), n_bins - 1).astype(np.int64)


def bins_points(actions, n_bins=256, low=-1.0, high=1.0):
    a = np.clip(actions, low, high)
    return np.round((a - low) / (high - low) * (n_bins - 1)).astype(np.int64)


def bins_rounded(actions, n_bins=256, low=-1.0, high=1.0):
    a = np.clip(actions, low, high)
    return np.minimum(np.round((a - low) / (high - low) * n_bins), n_bins - 1).astype(np.int64)


def bins_openvla(actions, n_bins=256, low=-1.0, high=1.0):
    return np.digitize(np.clip(actions, low, high), np.linspace(low, high, n_bins))


def bins_reversed(actions, n_bins=256, low=-1.0, high=1.0):
    return n_bins - 1 - reference("10.1")(actions, n_bins, low, high)


def bins_as_edges(actions, n_bins=256, low=-1.0, high=1.0):
    return low + reference("10.1")(actions, n_bins, low, high) * (high - low) / n_bins


def bins_float(actions, n_bins=256, low=-1.0, high=1.0):
    return reference("10.1")(actions, n_bins, low, high).astype(float)


def bins_fixed_range(actions, n_bins=256, low=-1.0, high=1.0):
    return reference("10.1")(actions, n_bins, -1.0, 1.0)


def bins_fixed_count(actions, n_bins=256, low=-1.0, high=1.0):
    return reference("10.1")(actions, 256, low, high)


def bins_flattened(actions, n_bins=256, low=-1.0, high=1.0):
    return reference("10.1")(actions, n_bins, low, high).ravel()


def bins_first_dimension(actions, n_bins=256, low=-1.0, high=1.0):  # only dx of each action
    return reference("10.1")(np.asarray(actions)[..., 0], n_bins, low, high)


def bins_nearest_centre_off_by_half(actions, n_bins=256, low=-1.0, high=1.0):  # shifted by half a bin
    a = np.clip(np.asarray(actions, dtype=float) + (high - low) / n_bins / 2, low, high)
    return np.minimum(np.floor((a - low) / (high - low) * n_bins), n_bins - 1).astype(np.int64)


def test_right_variants_pass():
    _passes("10.1", bins_torch)
    _passes("10.1", bins_loop)


@pytest.mark.parametrize("answer, phrase", [
    (bins_no_clip, "not clipped"),
    (bins_high_overflows, "one past the last"),
    (bins_low_unclipped, "negative bin"),
    (bins_points, "evenly spaced *points*"),
    (bins_rounded, "rounds to the nearest edge"),
    (bins_openvla, "np.digitize"),
    (bins_reversed, "backwards"),
    (bins_as_edges, "lower edge as a number"),
    (bins_float, "return integers"),
    (bins_fixed_range, "use the low and high you are given"),
    (bins_fixed_count, "use the n_bins you are given"),
    (bins_flattened, "the input's shape"),
    (bins_first_dimension, "the input's shape"),
    (bins_nearest_centre_off_by_half, "the bin whose edges hold it"),
])
def test_action_to_bins_mistakes_are_named(answer, phrase):
    failed_with("10.1", answer, phrase)


# --- 10.2 bins back to actions -------------------------------------------------------------------------------------

def action_torch(bins, n_bins=256, low=-1.0, high=1.0):  # torch: right
    b = torch.as_tensor(np.asarray(bins)).double()
    return low + (b + 0.5) * (high - low) / n_bins


def action_lower_edge(bins, n_bins=256, low=-1.0, high=1.0):
    return low + np.asarray(bins) * (high - low) / n_bins


def action_upper_edge(bins, n_bins=256, low=-1.0, high=1.0):
    return low + (np.asarray(bins) + 1) * (high - low) / n_bins


def action_linspace(bins, n_bins=256, low=-1.0, high=1.0):
    return np.linspace(low, high, n_bins)[np.asarray(bins)]


def action_no_low(bins, n_bins=256, low=-1.0, high=1.0):
    return np.asarray(bins) * (high - low) / n_bins


def action_reversed(bins, n_bins=256, low=-1.0, high=1.0):
    return high - (np.asarray(bins) + 0.5) * (high - low) / n_bins


def action_share(bins, n_bins=256, low=-1.0, high=1.0):
    return np.asarray(bins) / n_bins


def action_fixed_range(bins, n_bins=256, low=-1.0, high=1.0):
    return -1 + (np.asarray(bins) + 0.5) * 2 / n_bins


def action_integer_division(bins, n_bins=256, low=-1.0, high=1.0):  # (b + 0.5) // ... floors the offset
    return low + ((np.asarray(bins) + 0.5) * (high - low)) // n_bins


def action_mean_of_first_dimension(bins, n_bins=256, low=-1.0, high=1.0):  # loses the shape
    return reference("10.2")(np.asarray(bins), n_bins, low, high).mean(-1)


def test_right_decoders_pass():
    _passes("10.2", action_torch)


@pytest.mark.parametrize("answer, phrase", [
    (action_lower_edge, "lower edge"),
    (action_upper_edge, "upper edge"),
    (action_linspace, "np.linspace"),
    (action_no_low, "add low"),
    (action_reversed, "backwards"),
    (action_share, "multiply by the range's width"),
    (action_fixed_range, "use the low, high and n_bins you are given"),
    (action_integer_division, "inside that bin"),
    (action_mean_of_first_dimension, "the input's shape"),
])
def test_bins_to_action_mistakes_are_named(answer, phrase):
    failed_with("10.2", answer, phrase)


# --- 10.3 a closed-loop episode ------------------------------------------------------------------------------------

def episode_for_loop(env, policy, seed):  # a bounded for loop with a break: right
    obs, _ = env.reset(seed=seed)
    for moves in range(1, 10_000):
        obs, _, terminated, truncated, _ = env.step(policy(obs))
        if terminated or truncated:
            return terminated, moves


def episode_done_flag(env, policy, seed):  # a done flag and numpy bool: right
    obs, _ = env.reset(seed=seed)
    done, moves = False, 0
    while not done:
        obs, _, terminated, truncated, _ = env.step(policy(obs))
        moves += 1
        done = terminated or truncated
    return np.bool_(terminated), moves


def episode_only_terminated(env, policy, seed):
    obs, _ = env.reset(seed=seed)
    moves = 0
    while True:
        obs, _, terminated, _, _ = env.step(policy(obs))
        moves += 1
        if terminated:
            return True, moves


def episode_no_seed(env, policy, seed):
    obs, _ = env.reset()
    moves = 0
    while True:
        obs, _, terminated, truncated, _ = env.step(policy(obs))
        moves += 1
        if terminated or truncated:
            return terminated, moves


def episode_no_reset(env, policy, seed):
    obs = {"image": np.zeros((2, 2, 3), np.uint8), "instruction": ""}
    moves = 0
    while True:
        obs, _, terminated, truncated, _ = env.step(policy(obs))
        moves += 1
        if terminated or truncated:
            return terminated, moves


def episode_stale_observation(env, policy, seed):  # open loop: the first observation for every move
    first, _ = env.reset(seed=seed)
    moves = 0
    while True:
        _, _, terminated, truncated, _ = env.step(policy(first))
        moves += 1
        if terminated or truncated:
            return terminated, moves


def episode_reward_success(env, policy, seed):  # success from the summed rewards
    obs, _ = env.reset(seed=seed)
    total, moves = 0.0, 0
    while True:
        obs, reward, terminated, truncated, _ = env.step(policy(obs))
        total += reward
        moves += 1
        if terminated or truncated:
            return total > 0, moves


def episode_truncated_is_success(env, policy, seed):
    obs, _ = env.reset(seed=seed)
    moves = 0
    while True:
        obs, _, terminated, truncated, _ = env.step(policy(obs))
        moves += 1
        if terminated or truncated:
            return terminated or truncated, moves


def episode_counts_the_reset(env, policy, seed):
    obs, _ = env.reset(seed=seed)
    moves = 1
    while True:
        obs, _, terminated, truncated, _ = env.step(policy(obs))
        moves += 1
        if terminated or truncated:
            return terminated, moves


def episode_one_extra_step(env, policy, seed):  # checks the flags before stepping
    obs, _ = env.reset(seed=seed)
    terminated = truncated = False
    moves = 0
    while not (terminated and truncated):
        obs, _, t, u, _ = env.step(policy(obs))
        moves += 1
        if terminated or truncated:
            break
        terminated, truncated = t, u
    return terminated, moves


def episode_reset_every_move(env, policy, seed):
    moves = 0
    while True:
        obs, _ = env.reset(seed=seed)
        obs, _, terminated, truncated, _ = env.step(policy(obs))
        moves += 1
        if terminated or truncated or moves > 20:
            return terminated, moves


def episode_returns_dict(env, policy, seed):
    success, moves = reference("10.3")(env, policy, seed)
    return {"success": success, "moves": moves}


def test_right_episode_loops_pass():
    _passes("10.3", episode_for_loop)
    _passes("10.3", episode_done_flag)


@pytest.mark.parametrize("answer, phrase", [
    (episode_only_terminated, "*or* truncated"),
    (episode_no_seed, "without the seed"),
    (episode_no_reset, "never called"),
    (episode_stale_observation, "old observation"),
    (episode_reward_success, "success is termination"),
    (episode_truncated_is_success, "only termination is"),
    (episode_counts_the_reset, "not the reset"),
    (episode_one_extra_step, "after the episode had ended"),
    (episode_reset_every_move, "call it once"),
    (episode_returns_dict, "(success, moves)"),
])
def test_episode_mistakes_are_named(answer, phrase):
    failed_with("10.3", answer, phrase)


# --- 10.4 FastV's choice of image tokens ---------------------------------------------------------------------------

def keep_numpy(attention, keep):  # numpy argsort on the summed attention: right (the sum ranks as the mean)
    scores = np.asarray(attention).sum(1)
    return np.sort(np.argsort(-scores, axis=1, kind="stable")[:, :keep], axis=1)


def keep_unsorted(attention, keep):
    return attention.mean(1).topk(keep, dim=1).indices


def keep_least(attention, keep):
    return attention.mean(1).topk(keep, dim=1, largest=False).indices.sort(1).values


def keep_first_head(attention, keep):
    return attention[:, 0].topk(keep, dim=1).indices.sort(1).values


def keep_max_head(attention, keep):
    return attention.amax(1).topk(keep, dim=1).indices.sort(1).values


def keep_wrong_axis(attention, keep):
    return attention.mean(2).topk(keep, dim=1).indices.sort(1).values


def keep_mask(attention, keep):
    idx = attention.mean(1).topk(keep, dim=1).indices
    return torch.zeros(attention.shape[0], attention.shape[2], dtype=torch.bool).scatter(1, idx, True)


def keep_values(attention, keep):
    return attention.mean(1).topk(keep, dim=1).values


def keep_first_tokens(attention, keep):  # the first `keep` positions, whatever the attention
    return torch.arange(keep).expand(attention.shape[0], -1)


def keep_batch_mean(attention, keep):  # one choice for the whole batch
    idx = attention.mean((0, 1)).topk(keep).indices.sort().values
    return idx.expand(attention.shape[0], -1)


def keep_one_more(attention, keep):
    return attention.mean(1).topk(keep + 1, dim=1).indices.sort(1).values


def test_right_token_choices_pass():
    _passes("10.4", keep_numpy)


@pytest.mark.parametrize("answer, phrase", [
    (keep_unsorted, "sort the indices"),
    (keep_least, "*least* attended"),
    (keep_first_head, "first head alone"),
    (keep_max_head, "largest attention of any head"),
    (keep_wrong_axis, "the heads are dim 1"),
    (keep_mask, "boolean mask"),
    (keep_values, "not its .values"),
    (keep_first_tokens, "follow the tokens"),
    (keep_batch_mean, "its own attention"),
    (keep_one_more, "`keep` per row"),
])
def test_fastv_mistakes_are_named(answer, phrase):
    failed_with("10.4", answer, phrase)



# --- 10.5 a step of PGD --------------------------------------------------------------------------------------------

def pgd_clamp_first(images, grad, original, eps, alpha):  # clamp to [0, 1], then project: right (original in [0, 1])
    x = (images + alpha * torch.sign(grad)).clamp(0, 1)
    return torch.clamp(x, original - eps, original + eps)


def pgd_descent(images, grad, original, eps, alpha):
    return reference("10.5")(images, -grad, original, eps, alpha)


def pgd_raw_gradient(images, grad, original, eps, alpha):
    x = images + alpha * grad
    return torch.min(torch.max(x, original - eps), original + eps).clamp(0, 1)


def pgd_no_projection(images, grad, original, eps, alpha):
    return (images + alpha * grad.sign()).clamp(0, 1)


def pgd_box_around_current(images, grad, original, eps, alpha):
    return reference("10.5")(images, grad, images, eps, alpha)


def pgd_no_clamp(images, grad, original, eps, alpha):
    x = images + alpha * grad.sign()
    return torch.min(torch.max(x, original - eps), original + eps)


def pgd_eps_step(images, grad, original, eps, alpha):
    return reference("10.5")(images, grad, original, eps, eps)


def pgd_from_original(images, grad, original, eps, alpha):
    return reference("10.5")(original, grad, original, eps, alpha)


def pgd_l2(images, grad, original, eps, alpha):
    g = grad / grad.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    x = images + alpha * g
    return torch.min(torch.max(x, original - eps), original + eps).clamp(0, 1)


def pgd_tanh(images, grad, original, eps, alpha):  # a soft sign: not the same step for every pixel
    x = images + alpha * torch.tanh(grad / 0.1)
    return torch.min(torch.max(x, original - eps), original + eps).clamp(0, 1)


def pgd_numpy(images, grad, original, eps, alpha):  # returns a numpy array
    return reference("10.5")(images, grad, original, eps, alpha).numpy()


def test_right_pgd_steps_pass():
    _passes("10.5", pgd_clamp_first)


@pytest.mark.parametrize("answer, phrase", [
    (pgd_descent, "*down* the loss"),
    (pgd_raw_gradient, "its *sign*"),
    (pgd_no_projection, "not projected back"),
    (pgd_box_around_current, "around the *original*"),
    (pgd_no_clamp, "clamp to [0, 1]"),
    (pgd_eps_step, "use the step size alpha"),
    (pgd_from_original, "from the current `images`"),
    (pgd_l2, "L2-normalised"),
    (pgd_tanh, "only its sign matters"),
    (pgd_numpy, "a tensor"),
])
def test_pgd_mistakes_are_named(answer, phrase):
    failed_with("10.5", answer, phrase)


# --- 10.6 bit-depth squeezing, with a straight-through gradient ------------------------------------------------------

def squeeze_custom_function(images, bits=4):  # a custom autograd Function: right
    class Round(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            levels = 2**bits - 1
            return torch.round(x * levels) / levels

        @staticmethod
        def backward(ctx, g):
            return g

    return Round.apply(images)


def squeeze_no_gradient(images, bits=4):
    levels = 2**bits - 1
    return torch.round(images * levels) / levels


def squeeze_detached(images, bits=4):
    return squeeze_no_gradient(images.detach(), bits)


def squeeze_wrong_sign(images, bits=4):  # forward right, gradient the negated identity
    levels = 2**bits - 1
    rounded = torch.round(images * levels) / levels
    return rounded.detach() - (images - images.detach())


def squeeze_power_of_two(images, bits=4):
    rounded = torch.round(images * 2**bits) / 2**bits
    return images + (rounded - images).detach()


def squeeze_floor(images, bits=4):
    levels = 2**bits - 1
    return images + (torch.floor(images * levels) / levels - images).detach()


def squeeze_indices(images, bits=4):
    levels = 2**bits - 1
    return images + (torch.round(images * levels) - images).detach()


def squeeze_bits_as_steps(images, bits=4):
    return images + (torch.round(images * bits) / bits - images).detach()


def squeeze_fixed_bits(images, bits=4):
    return reference("10.6")(images, 4)


def squeeze_half_gradient(images, bits=4):  # a gradient, scaled
    levels = 2**bits - 1
    rounded = torch.round(images * levels) / levels
    return 0.5 * images + (rounded - 0.5 * images).detach()


def test_right_squeezes_pass():
    _passes("10.6", squeeze_custom_function)


@pytest.mark.parametrize("answer, phrase", [
    (squeeze_no_gradient, "no gradient flows back"),
    (squeeze_detached, "no gradient flows back"),
    (squeeze_wrong_sign, "not the identity's"),
    (squeeze_half_gradient, "not the identity's"),
    (squeeze_power_of_two, "17 levels"),
    (squeeze_floor, "floors instead of rounding"),
    (squeeze_indices, "level indices"),
    (squeeze_bits_as_steps, "number of levels is 2^bits"),
    (squeeze_fixed_bits, "use the bits you are given"),
])
def test_squeeze_mistakes_are_named(answer, phrase):
    failed_with("10.6", answer, phrase)


# --- 10.7 embedding a watermark ------------------------------------------------------------------------------------

def embed_torch(images, pattern, strength):  # torch, then back to NumPy: right
    x = torch.as_tensor(images, dtype=torch.float64) + strength * torch.as_tensor(pattern, dtype=torch.float64)
    return torch.round(x).clamp(0, 255).to(torch.uint8).numpy()


def embed_loop(images, pattern, strength):  # one image at a time: right
    return np.stack([np.clip(np.round(im.astype(float) + strength * pattern), 0, 255).astype(np.uint8)
                     for im in images])


def embed_wraps(images, pattern, strength):
    return (images.astype(float) + strength * pattern).astype(np.uint8)


def embed_in_uint8(images, pattern, strength):
    return images + (strength * pattern).astype(np.int64).astype(np.uint8)


def embed_truncates(images, pattern, strength):
    return np.clip(images + strength * pattern, 0, 255).astype(np.uint8)


def embed_subtracts(images, pattern, strength):
    return np.clip(np.round(images.astype(float) - strength * pattern), 0, 255).astype(np.uint8)


def embed_no_strength(images, pattern, strength):
    return np.clip(np.round(images.astype(float) + pattern), 0, 255).astype(np.uint8)


def embed_times_255(images, pattern, strength):
    return np.clip(np.round(images.astype(float) + 255 * strength * pattern), 0, 255).astype(np.uint8)


def embed_multiplicative(images, pattern, strength):
    return np.clip(np.round(images * (1 + strength * pattern / 255)), 0, 255).astype(np.uint8)


def embed_float(images, pattern, strength):
    return np.clip(np.round(images.astype(float) + strength * pattern), 0, 255)


def embed_exact(images, pattern, strength):
    return images.astype(float) + strength * pattern


def embed_first_channel(images, pattern, strength):  # marks only the red channel
    out = images.astype(float)
    out[..., 0] += strength * pattern[..., 0]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def embed_one_image(images, pattern, strength):
    return reference("10.7")(images[:1], pattern, strength)


def embed_clipped_before_adding(images, pattern, strength):
    return np.round(np.clip(images.astype(float), 0, 255) + strength * pattern).astype(np.uint8)


def test_right_embeds_pass():
    _passes("10.7", embed_torch)
    _passes("10.7", embed_loop)


@pytest.mark.parametrize("answer, phrase", [
    (embed_wraps, "wrapped around"),
    (embed_in_uint8, "adds in uint8"),
    (embed_truncates, "truncates instead of rounding"),
    (embed_subtracts, "subtracts the pattern"),
    (embed_no_strength, "bare pattern"),
    (embed_times_255, "by 255"),
    (embed_multiplicative, "multiplicative"),
    (embed_float, "return uint8"),
    (embed_exact, "exact sums"),
    (embed_first_channel, "three channels"),
    (embed_one_image, "the input's shape"),
    (embed_clipped_before_adding, "clip before casting"),
])
def test_embed_mistakes_are_named(answer, phrase):
    failed_with("10.7", answer, phrase)


# --- 10.8 the detector's z-score -----------------------------------------------------------------------------------

def z_torch(residuals, pattern):  # torch: right
    r = torch.as_tensor(residuals, dtype=torch.float64).flatten(1)
    p = torch.as_tensor(pattern, dtype=torch.float64).flatten()
    r = r - r.mean(1, keepdim=True)
    return ((r @ p) / (r.std(1, unbiased=False) * p.norm())).numpy()


def z_sample_std(residuals, pattern):  # ddof=1: the same test to 1 part in 2n, right
    r = residuals - residuals.mean(axis=(1, 2, 3), keepdims=True)
    return (r * pattern).sum(axis=(1, 2, 3)) / (r.std(axis=(1, 2, 3), ddof=1) * np.linalg.norm(pattern))


def _centred(residuals):
    return residuals - residuals.mean(axis=(1, 2, 3), keepdims=True)


def z_uncentred(residuals, pattern):
    return (residuals * pattern).sum(axis=(1, 2, 3)) / (residuals.std(axis=(1, 2, 3)) * np.linalg.norm(pattern))


def z_raw(residuals, pattern):
    return (_centred(residuals) * pattern).sum(axis=(1, 2, 3))


def z_mean(residuals, pattern):
    return (_centred(residuals) * pattern).mean(axis=(1, 2, 3))


def z_over_n(residuals, pattern):
    r = _centred(residuals)
    return (r * pattern).sum(axis=(1, 2, 3)) / (r.std(axis=(1, 2, 3)) * pattern.size)


def z_batch_std(residuals, pattern):
    r = _centred(residuals)
    return (r * pattern).sum(axis=(1, 2, 3)) / (r.std() * np.linalg.norm(pattern))


def z_abs(residuals, pattern):
    return np.abs(reference("10.8")(residuals, pattern))


def z_pearson(residuals, pattern):
    return np.array([np.corrcoef(r.ravel(), pattern.ravel())[0, 1] for r in residuals])


def z_variance(residuals, pattern):
    r = _centred(residuals)
    return (r * pattern).sum(axis=(1, 2, 3)) / (r.var(axis=(1, 2, 3)) * np.linalg.norm(pattern))


def z_median(residuals, pattern):
    r = residuals - np.median(residuals, axis=(1, 2, 3), keepdims=True)
    return (r * pattern).sum(axis=(1, 2, 3)) / (residuals.std(axis=(1, 2, 3)) * np.linalg.norm(pattern))


def z_whole_batch(residuals, pattern):
    return reference("10.8")(residuals, pattern).sum()


def z_per_channel(residuals, pattern):  # one z per image and channel
    r = residuals - residuals.mean(axis=(1, 2), keepdims=True)
    return (r * pattern).sum(axis=(1, 2)) / (r.std(axis=(1, 2)) * np.linalg.norm(pattern, axis=(0, 1)))


def z_pattern_std(residuals, pattern):  # normalised by the pattern's std instead of its norm
    r = _centred(residuals)
    return (r * pattern).sum(axis=(1, 2, 3)) / (r.std(axis=(1, 2, 3)) * pattern.std() * np.sqrt(pattern.size) * 1.7)


def test_right_detectors_pass():
    _passes("10.8", z_torch)
    _passes("10.8", z_sample_std)


@pytest.mark.parametrize("answer, phrase", [
    (z_uncentred, "mean was not removed"),
    (z_raw, "raw correlation"),
    (z_mean, "number of pixels"),
    (z_over_n, "not n"),
    (z_batch_std, "whole batch"),
    (z_abs, "absolute value"),
    (z_pearson, "correlation coefficient"),
    (z_variance, "variance"),
    (z_median, "median"),
    (z_whole_batch, "one z-score per image"),
    (z_per_channel, "one z-score per image"),
    (z_pattern_std, "spread about 1"),
])
def test_detection_z_mistakes_are_named(answer, phrase):
    failed_with("10.8", answer, phrase)


# --- 10.9 grid positions for a larger screen -----------------------------------------------------------------------

def _square(pos):
    n = int(round(pos.shape[0] ** 0.5))
    return pos.T.reshape(1, pos.shape[1], n, n)


def grid_permute(pos, grid):  # (n, n, D) -> permute to (D, n, n): right
    n = int(round(pos.shape[0] ** 0.5))
    x = pos.reshape(n, n, -1).permute(2, 0, 1)[None]
    out = torch.nn.functional.interpolate(x, size=(grid, grid), mode="bilinear", align_corners=False)
    return out[0].permute(1, 2, 0).reshape(grid * grid, -1)


def grid_einops_style(pos, grid):  # via a view and movedim: right
    n = int(round(pos.shape[0] ** 0.5))
    x = pos.view(n, n, -1).movedim(-1, 0).unsqueeze(0)
    out = torch.nn.functional.interpolate(x, size=(grid, grid), mode="bilinear")
    return out.squeeze(0).movedim(0, -1).reshape(-1, pos.shape[1])


def _resize(x, grid, **kw):
    return torch.nn.functional.interpolate(x, size=(grid, grid), **kw).reshape(x.shape[1], grid * grid).T


def grid_1d(pos, grid):
    return torch.nn.functional.interpolate(pos.T[None], size=grid * grid, mode="linear", align_corners=False)[0].T


def grid_nearest(pos, grid):
    return _resize(_square(pos), grid, mode="nearest")


def grid_corners(pos, grid):
    return _resize(_square(pos), grid, mode="bilinear", align_corners=True)


def grid_bicubic(pos, grid):
    return _resize(_square(pos), grid, mode="bicubic", align_corners=False)


def grid_no_transpose(pos, grid):
    n = int(round(pos.shape[0] ** 0.5))
    return _resize(pos.reshape(1, pos.shape[1], n, n), grid, mode="bilinear", align_corners=False)


def grid_swapped(pos, grid):
    return _resize(_square(pos).transpose(2, 3), grid, mode="bilinear", align_corners=False)


def grid_unflattened(pos, grid):
    return _resize(_square(pos), grid, mode="bilinear", align_corners=False).T


def grid_fixed_size(pos, grid):
    return _resize(_square(pos), 8, mode="bilinear", align_corners=False)


def grid_flattened_wrongly(pos, grid):  # (1, D, g, g) reshaped straight to (g², D)
    return torch.nn.functional.interpolate(_square(pos), size=(grid, grid), mode="bilinear").reshape(grid * grid, -1)


def grid_padded(pos, grid):  # the old vectors in the corner, zeros elsewhere
    out = torch.zeros(grid, grid, pos.shape[1])
    n = int(round(pos.shape[0] ** 0.5))
    out[:n, :n] = pos.reshape(n, n, -1)
    return out.reshape(grid * grid, -1)


def test_right_interpolations_pass():
    _passes("10.9", grid_permute)
    _passes("10.9", grid_einops_style)


@pytest.mark.parametrize("answer, phrase", [
    (grid_1d, "flattened sequence"),
    (grid_nearest, "nearest neighbour"),
    (grid_corners, "align_corners=False"),
    (grid_bicubic, "bicubic"),
    (grid_no_transpose, "without transposing"),
    (grid_swapped, "rows and columns are swapped"),
    (grid_unflattened, "shape (64, 5)"),
    (grid_fixed_size, "grid size you are given"),
    (grid_padded, "stay the same"),
    (grid_flattened_wrongly, "flattened back"),
])
def test_interpolate_grid_positions_mistakes_are_named(answer, phrase):
    failed_with("10.9", answer, phrase)
