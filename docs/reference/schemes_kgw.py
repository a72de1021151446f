"""Independent reference of three tracemark schemes (docs/schemes/kgw.md,
unigram.md, dipmark.md), written from those specs in plain Python on top of
tm_prf.py (standard library only). It prints the schemes' test vectors, which
the C tests (tests/test_kgw.c, test_unigram.c, test_dipmark.c) hold as
constants; it is never used by the product.

    python3 docs/reference/schemes_kgw.py
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tm_prf  # noqa: E402

DOMAIN_KGW_LEFTHASH = 0x01
DOMAIN_KGW_SELFHASH = 0x02
DOMAIN_UNIGRAM = 0x03
DOMAIN_DIPMARK = 0x06

# The spec's test master key: bytes 00 01 02 ... 1f.
MASTER = bytes(range(32))


def g17(x: float) -> str:
    """C's printf("%.17g") for the values used here (the HKDF info strings)."""
    return "%.17g" % x


def kgw_info(seeding: str, h: int, gamma: float, delta: float) -> str:
    return f"kgw;seeding={seeding};h={h};gamma={g17(gamma)};delta={g17(delta)}"


def unigram_info(gamma: float, delta: float) -> str:
    return f"unigram;gamma={g17(gamma)};delta={g17(delta)}"


def dipmark_info(h: int, alpha: float) -> str:
    return f"dipmark;h={h};alpha={g17(alpha)}"


# ---- KGW -------------------------------------------------------------------

def kgw_lefthash(key, context, w, h, gamma):
    """(prf value, uniform, green) of w after the last h tokens of context."""
    tokens = list(context[len(context) - h:]) + [w]
    x = tm_prf.prf(*key, DOMAIN_KGW_LEFTHASH, tokens, 0)
    u = tm_prf.uniform(x)
    return x, u, u < gamma


def kgw_selfhash(key, context, w, h, gamma):
    """(anchor y*, prf value of the draw, uniform, green) for w after the last h-1 tokens."""
    members = list(context[len(context) - (h - 1):]) if h > 1 else []
    # min-hash over the set {x_{t-h+1..t-1}, w}, every member paired with the anchor w
    best = None
    for y in members + [w]:
        rank = tm_prf.prf(*key, DOMAIN_KGW_SELFHASH, [y, w], 0)
        if best is None or (rank, y) < best:
            best = (rank, y)
    y_star = best[1]
    x = tm_prf.prf(*key, DOMAIN_KGW_SELFHASH, [y_star, w], 1)
    u = tm_prf.uniform(x)
    return y_star, x, u, u < gamma


# ---- Unigram ---------------------------------------------------------------

def unigram(key, w, gamma):
    x = tm_prf.prf(*key, DOMAIN_UNIGRAM, [w], 0)
    u = tm_prf.uniform(x)
    return x, u, u < gamma


# ---- DiPmark ---------------------------------------------------------------

def dipmark_u(key, context, w, h):
    tokens = list(context[len(context) - h:]) + [w]
    return tm_prf.uniform(tm_prf.prf(*key, DOMAIN_DIPMARK, tokens, 0))


def dipmark_fingerprint(key, context, h):
    return tm_prf.prf(*key, DOMAIN_DIPMARK, list(context[len(context) - h:]), 0xFFFFFFFF)


def dipmark_reweight(key, context, probs: dict, h, alpha):
    """P' for a distribution {token: p}: order by (u, id), g(F) differences."""
    order = sorted(probs, key=lambda w: (dipmark_u(key, context, w, h), w))
    total = sum(probs.values())

    def g(F):
        return max(F - alpha, 0.0) + max(F - (1.0 - alpha), 0.0)

    out, cumulative, previous = {}, 0.0, 0.0
    for i, w in enumerate(order):
        cumulative += probs[w]
        G = g(1.0 if i + 1 == len(order) else cumulative / total)
        out[w] = G - previous
        previous = G
    return order, out


def main():
    print("key id:", tm_prf.key_id(MASTER))
    print()

    info = kgw_info("lefthash", 1, 0.25, 2.0)
    key = tm_prf.subkey(MASTER, info)
    print(f"KGW LeftHash  info={info!r}  subkey k0={key[0]:#018x} k1={key[1]:#018x}")
    for context, w in [([1], 0), ([1], 1), ([1], 2), ([1], 3), ([29871], 450), ([450], 29871), ([2], 31999),
                       ([100], 7)]:
        x, u, green = kgw_lefthash(key, context, w, 1, 0.25)
        print(f"  context={context} w={w}: prf={x:#018x} u={u:.17g} green={int(green)}")
    print()

    info = kgw_info("selfhash", 4, 0.25, 2.0)
    key = tm_prf.subkey(MASTER, info)
    print(f"KGW SelfHash  info={info!r}  subkey k0={key[0]:#018x} k1={key[1]:#018x}")
    for context, w in [([10, 20, 30], 40), ([10, 20, 30], 10), ([1, 1, 1], 1), ([5, 6, 7], 0), ([5, 6, 7], 31999),
                       ([100, 200, 300], 400)]:
        y, x, u, green = kgw_selfhash(key, context, w, 4, 0.25)
        print(f"  context={context} w={w}: anchor y*={y} prf={x:#018x} u={u:.17g} green={int(green)}")
    print()

    info = unigram_info(0.5, 2.0)
    key = tm_prf.subkey(MASTER, info)
    print(f"Unigram  info={info!r}  subkey k0={key[0]:#018x} k1={key[1]:#018x}")
    for w in [0, 1, 2, 3, 450, 29871, 31999]:
        x, u, green = unigram(key, w, 0.5)
        print(f"  w={w}: prf={x:#018x} u={u:.17g} green={int(green)}")
    print()

    info = dipmark_info(1, 0.45)
    key = tm_prf.subkey(MASTER, info)
    print(f"DiPmark  info={info!r}  subkey k0={key[0]:#018x} k1={key[1]:#018x}")
    for context, w in [([42], 0), ([42], 1), ([42], 2), ([42], 3), ([7], 100), ([31999], 31999)]:
        u = dipmark_u(key, context, w, 1)
        print(f"  context={context} w={w}: u={u:.17g} green={int(u >= 0.5)}")
    print(f"  fingerprint of context [42]: {dipmark_fingerprint(key, [42], 1):#018x}")
    probs = {0: 0.1, 1: 0.2, 2: 0.3, 3: 0.4}
    order, reweighted = dipmark_reweight(key, [42], probs, 1, 0.45)
    print(f"  reweight of {probs} after [42], alpha 0.45: order {order}")
    for w in order:
        print(f"    P'({w}) = {reweighted[w]:.17g}")


if __name__ == "__main__":
    main()
