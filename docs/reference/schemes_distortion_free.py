"""Independent reference of tracemark's three distortion-free schemes (Gumbel,
SynthID-Text tournament, EXP-edit / ITS-edit), written in plain Python from
docs/schemes/gumbel.md, synthid.md and exp-edit.md on top of tm_prf.py. It
computes the test vectors those pages list and tests/test_gumbel.c,
test_synthid.c and test_exp_edit.c check; it is never used by the product.

    python3 docs/reference/schemes_distortion_free.py      # prints the vectors

Also here, from their published definitions: SplitMix64 seeding and
xoshiro256** (prng.di.unimi.it), which tracemark's sampler RNG is, so that
the vectors can include the seeded draws (SynthID's final draw, EXP-edit's
shift, the plain draw of a repeated context).
"""
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tm_prf import describe, key_id, prf, subkey, uniform  # noqa: E402

MASK = (1 << 64) - 1

DOMAIN_GUMBEL = 0x04
DOMAIN_SYNTHID = 0x05
DOMAIN_EXP_EDIT = 0x07
DOMAIN_ITS_PERMUTATION = 0x08
FINGERPRINT_EXTRA = 0xFFFFFFFF

# ---- the sampler RNG: SplitMix64-seeded xoshiro256** ------------------------


class Rng:
    def __init__(self, seed: int):
        x = seed & MASK
        self.s = []
        for _ in range(4):
            x = (x + 0x9E3779B97F4A7C15) & MASK
            z = x
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
            self.s.append(z ^ (z >> 31))

    @staticmethod
    def _rotl(x, k):
        return ((x << k) | (x >> (64 - k))) & MASK

    def next(self) -> int:
        s = self.s
        result = (self._rotl((s[1] * 5) & MASK, 7) * 9) & MASK
        t = (s[1] << 17) & MASK
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = self._rotl(s[3], 45)
        return result

    def uniform(self) -> float:
        return (self.next() >> 40) * 2.0 ** -24


# ---- shared pieces ----------------------------------------------------------


def last(context, h):
    """The last min(h, len(context)) tokens: with a short history the schemes use what there is."""
    return list(context)[-h:] if h > 0 else []


def draw(weights, u):
    """Inverse CDF over (id, weight) in the candidates' order (as given, never
    sorted): the first whose cumulative weight exceeds u * total."""
    total = sum(w for _, w in weights if w > 0)
    target, cumulative, chosen = u * total, 0.0, weights[0][0]
    margin = math.inf
    for token, w in weights:
        if w <= 0:
            continue
        cumulative += w
        chosen = token
        margin = min(margin, abs(cumulative - target) / total)
        if target < cumulative:
            break
    return chosen, margin


def argmax_log_over_p(values):
    """argmax of log(r)/p over (id, r, p); returns the id and the relative gap to the runner-up."""
    scored = sorted(((math.log(r) / p, token) for token, r, p in values if p > 0), reverse=True)
    gap = (scored[0][0] - scored[1][0]) / abs(scored[0][0]) if len(scored) > 1 else math.inf
    return scored[0][1], gap


# ---- Gumbel -----------------------------------------------------------------


def gumbel_r(key, h, context, token):
    return uniform(prf(*key, DOMAIN_GUMBEL, last(context, h) + [token], 0))


def gumbel_select(key, h, context, candidates):
    return argmax_log_over_p([(t, gumbel_r(key, h, context, t), p) for t, p in candidates if p > 0])


# ---- SynthID ----------------------------------------------------------------


def synthid_g(key, h, layers, context, token):
    """g_l = bit (l - 1) mod 64 of prf([context, token], extra = (l - 1) div 64), l = 1..layers."""
    words = {}
    g = []
    for layer in range(1, layers + 1):
        e, bit = divmod(layer - 1, 64)
        if e not in words:
            words[e] = prf(*key, DOMAIN_SYNTHID, last(context, h) + [token], e)
        g.append(words[e] >> bit & 1)
    return g


def synthid_weights(key, h, layers, context, candidates):
    """The vectorised two-competitor tournament (synthid-text update_scores),
    layer by layer, over the candidates in their given order."""
    order = list(candidates)
    p = [w for _, w in order]
    total = sum(p)
    gs = [synthid_g(key, h, layers, context, t) for t, _ in order]
    for layer in range(layers):
        expected = sum(pi * g[layer] for pi, g in zip(p, gs)) / total
        p = [pi * (1 + g[layer] - expected) for pi, g in zip(p, gs)]
    return [(t, w) for (t, _), w in zip(order, p)]


# ---- EXP-edit / ITS-edit ----------------------------------------------------


def xi(key, row, token):
    return uniform(prf(*key, DOMAIN_EXP_EDIT, [token], row))


def its_u(key, row):
    return uniform(prf(*key, DOMAIN_EXP_EDIT, [], row))


def its_rank_key(key, token):
    return prf(*key, DOMAIN_ITS_PERMUTATION, [token], 0)


def shift(seed, n):
    return Rng(seed).next() % n


def exp_select(key, row, candidates):
    return argmax_log_over_p([(t, xi(key, row, t), p) for t, p in candidates if p > 0])


def its_select(key, row, candidates):
    order = sorted(((its_rank_key(key, t), t, p) for t, p in candidates if p > 0))
    return draw([(t, p) for _, t, p in order], its_u(key, row))


# ---- the vectors --------------------------------------------------------------

MASTER = bytes(range(32))
CONTEXT = [1, 2, 3, 4, 5, 6]
TOKEN = 7
CANDIDATES = [(3, 0.40), (17, 0.25), (42, 0.15), (99, 0.10), (250, 0.06), (511, 0.04)]
SEED = 42          # sampler seed of the selections
REPEAT_SEED = 14   # sampler seed of the repeated-context (plain) draws


def main():
    print(f"master key 00..1f, key id {key_id(MASTER)}")

    info = describe("gumbel", h=4)
    key = subkey(MASTER, info)
    print(f"\n[{info}]")
    print(f"r(context {CONTEXT}, token {TOKEN})   = {gumbel_r(key, 4, CONTEXT, TOKEN)!r}")
    print(f"r(context [9], token {TOKEN})          = {gumbel_r(key, 4, [9], TOKEN)!r}")
    print(f"r(context [], token {TOKEN})           = {gumbel_r(key, 4, [], TOKEN)!r}")
    chosen, gap = gumbel_select(key, 4, CONTEXT, CANDIDATES)
    print(f"selection after {CONTEXT}            = {chosen}  (relative gap to runner-up {gap:.3g})")
    # One sampler, seed REPEAT_SEED: the watermarked choice uses no RNG; the
    # same context again is drawn plainly from p with the first uniform.
    chosen, margin = draw(CANDIDATES, Rng(REPEAT_SEED).uniform())
    print(f"then repeated context, seed {REPEAT_SEED}: plain draw = {chosen}  (margin {margin:.3g})")

    info = describe("synthid", h=4, layers=30)
    key = subkey(MASTER, info)
    print(f"\n[{info}]")
    g = synthid_g(key, 4, 30, CONTEXT, TOKEN)
    print(f"g(context {CONTEXT}, token {TOKEN})   = {''.join(map(str, g))}  (layers 1..30)")
    g = synthid_g(key, 4, 30, [9], TOKEN)
    print(f"g(context [9], token {TOKEN})          = {''.join(map(str, g))}")
    weights = synthid_weights(key, 4, 30, CONTEXT, CANDIDATES)
    print("tournament weights after " + str(CONTEXT) + ": " + ", ".join(f"{t}: {w:.6f}" for t, w in weights))
    print(f"g-value word prf([3, 4, 5, 6, 7], extra 0) = {prf(*key, DOMAIN_SYNTHID, [3, 4, 5, 6, 7], 0):#018x}")
    # One sampler, seed SEED: the tournament's draw takes the RNG's first
    # uniform; the same context again (no token accepted in between) is
    # repeated and drawn plainly from p with the second uniform.
    rng = Rng(SEED)
    chosen, margin = draw(weights, rng.uniform())
    print(f"selection, seed {SEED}                 = {chosen}  (margin {margin:.3g})")
    chosen, margin = draw(CANDIDATES, rng.uniform())
    print(f"then repeated context: plain draw   = {chosen}  (margin {margin:.3g})")
    weights = synthid_weights(key, 4, 30, [9], CANDIDATES)
    print("tournament weights after [9]: " + ", ".join(f"{t}: {w:.6f}" for t, w in weights))
    chosen, margin = draw(weights, Rng(SEED).uniform())
    print(f"selection after [9], seed {SEED}       = {chosen}  (margin {margin:.3g})")

    info = describe("exp-edit", decoder="exp", n=256)
    key = subkey(MASTER, info)
    print(f"\n[{info}]")
    print(f"xi[0][{TOKEN}]   = {xi(key, 0, TOKEN)!r}")
    print(f"xi[255][{TOKEN}] = {xi(key, 255, TOKEN)!r}")
    s = shift(SEED, 256)
    print(f"shift for seed {SEED} = {s}")
    for step in range(3):
        row = (s + step) % 256
        chosen, gap = exp_select(key, row, CANDIDATES)
        print(f"step {step}: row {row}, selection = {chosen}  (relative gap {gap:.3g})")

    info = describe("exp-edit", decoder="its", n=256)
    key = subkey(MASTER, info)
    print(f"\n[{info}]")
    print(f"u_0   = {its_u(key, 0)!r}")
    print(f"u_255 = {its_u(key, 255)!r}")
    print(f"eta({TOKEN}) = {uniform(its_rank_key(key, TOKEN))!r}")
    order = sorted((its_rank_key(key, t), t) for t, _ in CANDIDATES)
    print(f"pi order of the candidates = {[t for _, t in order]}")
    s = shift(SEED, 256)
    for step in range(3):
        row = (s + step) % 256
        chosen, margin = its_select(key, row, CANDIDATES)
        print(f"step {step}: row {row}, u = {its_u(key, row):.6f}, selection = {chosen}  (margin {margin:.3g})")


if __name__ == "__main__":
    main()
