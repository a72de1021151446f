"""Independent reference of tracemark's detector, written in plain Python (the
standard library only) from docs/detect-spec.md, on top of tm_prf.py,
schemes_kgw.py and schemes_distortion_free.py. It turns a text into a
verdict: normalisation, the llama2.c / SentencePiece BPE tokenizer, the
per-token values, the masking of repeated pairs, each scheme's statistic and
its p-value, the EXP-edit / ITS-edit alignment and permutation test, the
family-wise correction for several keys. It writes the spec's test vectors
(tests/data/detect_vectors.json), which tests/test_detect_vectors.c checks
against tracemark; it is never used by the product.

    python3 docs/reference/tm_detect.py TOKENIZER.bin > tests/data/detect_vectors.json
    python3 docs/reference/tm_detect.py --markdown tests/data/detect_vectors.json   # the spec's tables

The normaliser here carries only the rows of the Unicode confusables table
(TR39) that the vectors use (CONFUSABLES below): tracemark reads the whole
table from ICU. Everything else is complete.
"""
import hashlib
import json
import math
import os
import struct
import sys
import unicodedata
from decimal import Decimal, getcontext
from fractions import Fraction

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tm_prf  # noqa: E402
from tm_prf import describe, prf, subkey, uniform  # noqa: E402
import schemes_kgw  # noqa: E402
import schemes_distortion_free as df  # noqa: E402

getcontext().prec = 60
MASK = (1 << 64) - 1

# ---- normalisation (spec: "Normalisation") ------------------------------------

ZERO_WIDTH = {0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF} | set(range(0xFE00, 0xFE10)) | set(range(0xE0100, 0xE01F0))
LINE_BREAKS = {0x0A, 0x0B, 0x0C, 0x0D, 0x85, 0x2028, 0x2029}

# Excerpt of the TR39 confusables: character -> (ASCII, folds anywhere?).
# Latin/Common look-alikes (typographic quotes, fullwidth) fold anywhere;
# those of a specific script (Cyrillic, Greek) only by the word rules.
CONFUSABLES = {
    "\u0430": ("a", False), "\u0435": ("e", False), "\u043e": ("o", False), "\u0440": ("p", False),
    "\u0441": ("c", False), "\u0443": ("y", False), "\u0445": ("x", False), "\u0410": ("A", False),
    "\u0412": ("B", False), "\u0415": ("E", False), "\u041a": ("K", False), "\u041c": ("M", False),
    "\u041d": ("H", False), "\u041e": ("O", False), "\u0420": ("P", False), "\u0421": ("C", False),
    "\u0422": ("T", False), "\u0425": ("X", False), "\u039f": ("O", False), "\u03bf": ("o", False),
    "\u2019": ("'", True), "\u201c": ('"', True), "\u201d": ('"', True), "\uff41": ("a", True),
}


def is_word_char(ch):
    return unicodedata.category(ch)[0] in "LMN"


def whitespace(text):
    out, in_run, after_cr = [], False, False
    for ch in text:
        cp = ord(ch)
        was_cr, after_cr = after_cr, False
        if cp in ZERO_WIDTH:
            continue
        if cp in LINE_BREAKS:
            in_run = False
            if cp == 0x0A and was_cr:
                continue
            after_cr = cp == 0x0D
            out.append("\n")
            continue
        if ch == "\t" or unicodedata.category(ch) == "Zs":
            if not in_run:
                out.append(" ")
            in_run = True
            continue
        in_run = False
        out.append(ch)
    return "".join(out)


def words_of(text):
    """(start, end) of each maximal run of letters, marks and numbers."""
    spans, start = [], None
    for i, ch in enumerate(text + " "):
        if i < len(text) and is_word_char(ch):
            if start is None:
                start = i
        elif start is not None:
            spans.append((start, i))
            start = None
    return spans


def fold_homoglyphs(text):
    chars = list(text)
    for i, ch in enumerate(chars):  # Latin and Common look-alikes fold anywhere
        if ch in CONFUSABLES and CONFUSABLES[ch][1]:
            chars[i] = CONFUSABLES[ch][0]
    spans = words_of("".join(chars))
    kinds = []
    for s, e in spans:
        word = chars[s:e]
        if any(c.isascii() and c.isalpha() for c in word):
            for i in range(s, e):  # rule 1: a Latin word folds its look-alikes
                if chars[i] in CONFUSABLES:
                    chars[i] = CONFUSABLES[chars[i]][0]
            kinds.append("latin")
        elif all(c in CONFUSABLES and CONFUSABLES[c][0].isalpha() for c in word):
            kinds.append("candidate")
        elif any(not unicodedata.category(c).startswith("N") for c in word):
            kinds.append("other")
        else:
            kinds.append("neutral")
    # rule 2: a whole look-alike word folds when the nearest deciding words are Latin
    deciding = [k if k in ("latin", "other") else None for k in kinds]
    for w, (s, e) in enumerate(spans):
        if kinds[w] != "candidate":
            continue
        left = next((deciding[j] for j in range(w - 1, -1, -1) if deciding[j]), None)
        right = next((deciding[j] for j in range(w + 1, len(spans)) if deciding[j]), None)
        if "latin" in (left, right) and "other" not in (left, right):
            for i in range(s, e):
                chars[i] = CONFUSABLES[chars[i]][0]
    return "".join(chars)


def normalize(text):
    return unicodedata.normalize("NFC", fold_homoglyphs(unicodedata.normalize("NFC", whitespace(text))))


# ---- the tokenizer (spec: "Tokenization") ---------------------------------------


class Tokenizer:
    """llama2.c tokenizer.bin: int32 max length, then per token float32 score,
    int32 length, bytes; spaces stand for U+2581; "\\n<s>\\n" is <s>."""

    def __init__(self, path):
        data = open(path, "rb").read()
        at, self.pieces, self.scores = 4, [], []
        while at < len(data):
            score, n = struct.unpack_from("<fi", data, at)
            piece = data[at + 8:at + 8 + n].replace(b" ", "\u2581".encode())
            if piece in (b"\n<s>\n", b"\n</s>\n"):
                piece = piece.strip(b"\n")
            self.pieces.append(piece)
            self.scores.append(score)
            at += 8 + n
        self.ids = {p: i for i, p in reversed(list(enumerate(self.pieces)))}
        self.byte_ids = {}
        for i, p in enumerate(self.pieces):
            if len(p) == 6 and p.startswith(b"<0x") and p.endswith(b">"):
                self.byte_ids.setdefault(int(p[3:5], 16), i)

    def encode(self, text, bos):
        ids = [1] if bos else []
        if not text:
            return ids
        escaped = ("\u2581" + text.replace(" ", "\u2581")).encode()
        symbols = []
        i = 0
        while i < len(escaped):  # UTF-8 characters
            n = 1
            while i + n < len(escaped) and escaped[i + n] & 0xC0 == 0x80:
                n += 1
            symbols.append(escaped[i:i + n])
            i += n
        while True:  # merge the highest-scoring pair, the leftmost among equals
            best, best_score = None, None
            for k in range(len(symbols) - 1):
                j = self.ids.get(symbols[k] + symbols[k + 1])
                if j is not None and (best is None or self.scores[j] > best_score):
                    best, best_score = k, self.scores[j]
            if best is None:
                break
            symbols[best:best + 2] = [symbols[best] + symbols[best + 1]]
        for s in symbols:
            if s in self.ids:
                ids.append(self.ids[s])
            else:
                ids.extend(self.byte_ids[b] for b in s)
        return ids


# ---- per-token values and masking (spec: "Context and masking") --------------------

SCHEMES = {
    "kgw-lefthash": dict(kind="kgw", seeding="lefthash", h=1, gamma=0.25, delta=2.0),
    "kgw-selfhash": dict(kind="kgw", seeding="selfhash", h=4, gamma=0.25, delta=2.0),
    "unigram": dict(kind="unigram", gamma=0.5, delta=2.0),
    "dipmark": dict(kind="dipmark", h=5, alpha=0.45),
    "gumbel": dict(kind="gumbel", h=4),
    "synthid": dict(kind="synthid", h=4, layers=30),
    "exp-edit": dict(kind="exp-edit", decoder="exp", n=256),
    "its-edit": dict(kind="exp-edit", decoder="its", n=256),
}


def scheme_info(s):
    if s["kind"] == "kgw":
        return schemes_kgw.kgw_info(s["seeding"], s["h"], s["gamma"], s["delta"])
    if s["kind"] == "unigram":
        return schemes_kgw.unigram_info(s["gamma"], s["delta"])
    if s["kind"] == "dipmark":
        return schemes_kgw.dipmark_info(s["h"], s["alpha"])
    if s["kind"] == "gumbel":
        return describe("gumbel", h=s["h"])
    if s["kind"] == "synthid":
        return describe("synthid", h=s["h"], layers=s["layers"])
    return describe("exp-edit", decoder=s["decoder"], n=s["n"])


def needed(s):
    """History a token needs: h; h - 1 for SelfHash (its window holds the token); 0 for Unigram."""
    if s["kind"] == "unigram":
        return 0
    if s["kind"] == "kgw" and s["seeding"] == "selfhash":
        return s["h"] - 1
    return s["h"]


def token_value(s, key, context, w):
    """(score, pair) of one token with its full history: pair is what its value depends on."""
    k = s["kind"]
    h = needed(s)
    ctx = list(context[len(context) - h:]) if h else []
    if k == "kgw" and s["seeding"] == "lefthash":
        return float(schemes_kgw.kgw_lefthash(key, ctx, w, s["h"], s["gamma"])[2]), tuple(ctx) + (w,)
    if k == "kgw":  # SelfHash: the value depends on the min-hash anchor y* and w only
        anchor, _, _, green = schemes_kgw.kgw_selfhash(key, ctx, w, s["h"], s["gamma"])
        return float(green), (anchor, w)
    if k == "unigram":
        return float(schemes_kgw.unigram(key, w, s["gamma"])[2]), (w,)
    if k == "dipmark":
        return (1.0 if schemes_kgw.dipmark_u(key, ctx, w, s["h"]) >= 0.5 else 0.0), tuple(ctx) + (w,)
    if k == "gumbel":
        r = df.gumbel_r(key, s["h"], ctx, w)
        return -math.log1p(-r), tuple(ctx) + (w,)
    if k == "synthid":
        return df.synthid_g(key, s["h"], s["layers"], ctx, w), tuple(ctx) + (w,)
    raise ValueError(k)


# ---- statistics (spec: "Statistics") ------------------------------------------------


def log_fraction(f):
    return math.log(f.numerator) - math.log(f.denominator) if f > 0 else -math.inf


def binomial_log_sf(k, n, p):
    """ln P(X >= k), X ~ Binomial(n, p), exactly in rationals (p is a dyadic rational here)."""
    p = Fraction(p)
    q = 1 - p
    if k <= 0:
        return 0.0
    if k > n:
        return -math.inf
    return log_fraction(sum(math.comb(n, j) * p ** j * q ** (n - j) for j in range(k, n + 1)))


def gamma_log_q(t, s):
    """ln Q(T, S) = ln P(Gamma(T, 1) >= S) = ln(e^-S sum_{k<T} S^k / k!), integer T, 60 digits."""
    if t == 0:
        return 0.0
    S = Decimal(s)
    term, total = Decimal(1), Decimal(0)
    for k in range(t):
        if k:
            term = term * S / k
        total += term
    return float(total.ln() - S)


def synthid_integer_weights(m):
    """linspace(10, 1, m) * (m - 1) / gcd(9, m - 1): integers with the same ratios."""
    if m == 1:
        return [1]
    g = math.gcd(9, m - 1)
    return [(10 * (m - 1) - 9 * l) // g for l in range(m)]


def synthid_weighted_log_sf(big_w, t, m):
    """ln P(W >= big_w), W = sum_l v_l N_l, N_l ~ Binomial(T, 1/2) independent: exact convolution."""
    v = synthid_integer_weights(m)
    counts = {0: 1}
    for vl in v:
        nxt = {}
        for w, c in counts.items():
            for j in range(t + 1):
                nxt[w + j * vl] = nxt.get(w + j * vl, 0) + c * math.comb(t, j)
        counts = nxt
    tail = sum(c for w, c in counts.items() if w >= big_w)
    return log_fraction(Fraction(tail, 2 ** (m * t)))


def normal_log_sf(z):
    return math.log(0.5 * math.erfc(z / math.sqrt(2)))


# ---- EXP-edit / ITS-edit (spec: "EXP-edit and ITS-edit") ----------------------------

BLOCK_MAX, GAP_EXP, GAP_ITS = 256, 2.0, 0.4


def xoshiro(secret):
    """xoshiro256** (df.Rng's step) from four little-endian words of secret."""
    rng = df.Rng(0)
    rng.s = [int.from_bytes(secret[8 * i:8 * i + 8], "little") for i in range(4)]
    if not any(rng.s):
        rng.s[0] = 1
    while True:
        yield rng.next()


def null_secret(seed, index):
    return hashlib.sha256(b"tracemark-exp-edit-null" + struct.pack("<QQ", seed, index)).digest()


def align_block(y, pair, n, gap):
    """min over key substrings of the edit cost of block y, as E = D - r gap (C's arithmetic order)."""
    k = len(y)
    columns = n + 2 * k
    prev = [-float(r) * gap for r in range(columns + 1)]
    for i in range(1, k + 1):
        cur = [float(i) * gap] + [0.0] * columns
        tok = y[i - 1]
        for r in range(1, columns + 1):
            diagonal = prev[r - 1] + (pair(tok, (r - 1) % n) - gap)
            up = prev[r] + gap
            value = diagonal if diagonal < up else up
            cur[r] = value if value < cur[r - 1] else cur[r - 1]
        prev = cur
    return min(prev[r] + float(r) * gap for r in range(columns + 1))


def phi(tokens, pair, n, gap):
    k = min(len(tokens), BLOCK_MAX)
    stride = BLOCK_MAX // 2
    blocks = 1 if len(tokens) <= k else (len(tokens) - k + stride - 1) // stride + 1
    best = math.inf
    for b in range(blocks):
        start = len(tokens) - k if b + 1 == blocks else b * stride
        best = min(best, align_block(tokens[start:start + k], pair, n, gap))
    return best


def permutation_detects(e, n_perm, n_keys, fpr):
    log_p = math.log(e + 1) - math.log(n_perm + 1)
    return min(0.0, log_p + math.log(n_keys)) <= math.log(fpr) + 1e-9


def exp_edit_test(s, master, tokens, n_perm, n_keys, fpr, seed=0, sequential=True):
    info = scheme_info(s)
    key = subkey(master, info)
    n = s["n"]
    its = s["decoder"] == "its"
    gap = GAP_ITS if its else GAP_EXP
    tokens = tokens[:4096]
    if not tokens:
        return dict(statistic=0.0, log_p=0.0, done=0, exceed=0)

    def pair_for(k):
        if its:
            u = [df.its_u(k, r) for r in range(n)]
            eta = {t: uniform(df.its_rank_key(k, t)) for t in set(tokens)}
            return lambda t, r: abs(u[r] - eta[t])
        table = {t: [math.log(1.0 - df.xi(k, r, t)) for r in range(n)] for t in set(tokens)}
        return lambda t, r: table[t][r]

    observed = phi(tokens, pair_for(key), n, gap)
    stop_at = 0
    while stop_at <= n_perm and permutation_detects(stop_at, n_perm, n_keys, fpr):
        stop_at += 1
    distinct = list(dict.fromkeys(tokens))
    exceed = done = 0
    for index in range(n_perm):
        secret = null_secret(seed, index)
        if its:
            pair = pair_for(subkey(secret, info))
        else:
            stream = xoshiro(secret)
            table = {t: [math.log(uniform(next(stream))) for _ in range(n)] for t in distinct}
            pair = lambda t, r, table=table: table[t][r]  # noqa: E731
        done += 1
        exceed += phi(tokens, pair, n, gap) <= observed
        if sequential and stop_at > 0 and exceed == stop_at:
            break
    if done < n_perm and exceed == stop_at and sequential and stop_at > 0:
        log_p = max(math.log(exceed) - math.log(done), math.log(exceed + 1) - math.log(n_perm + 1))
    else:
        log_p = math.log(exceed + 1) - math.log(n_perm + 1)
    return dict(statistic=observed, log_p=log_p, done=done, exceed=exceed)


# ---- windows (spec: "Windows") -------------------------------------------------------


def score_z(kind, gamma, layers, total, n):
    if kind == "gumbel":
        return (total - n) / math.sqrt(n)
    if kind == "synthid":
        bits = n * layers
        return (total - bits / 2) / math.sqrt(bits / 4)
    return (total - gamma * n) / math.sqrt(n * gamma * (1 - gamma))


def best_window(kind, gamma, layers, scores, positions, min_window):
    """The grid of windows over the scored tokens, the best z, its exact p and Bonferroni correction."""
    n = len(scores)
    if n < min_window:
        return None
    prefix = [0.0]
    for x in scores:
        prefix.append(prefix[-1] + x)
    best_z, best, examined, length = -math.inf, (0, n), 0, min_window
    while length <= n:
        stride = max(1, length // 8)
        start = 0
        while True:
            if start + length > n:
                start = n - length
            z = score_z(kind, gamma, layers, prefix[start + length] - prefix[start], float(length))
            examined += 1
            if z > best_z:
                best_z, best = z, (start, start + length)
            if start + length >= n:
                break
            start += stride
        following = math.ceil(length * 1.1)
        if length < n and following > n:
            following = n
        length = following if following > length else length + 1
    a, b = best
    total, count = prefix[b] - prefix[a], b - a
    if kind == "gumbel":
        log_p = gamma_log_q(count, total)
    elif kind == "synthid":
        log_p = binomial_log_sf(int(total), count * layers, 0.5)
    else:
        log_p = binomial_log_sf(int(total), count, gamma)
    return dict(start_token=positions[a], end_token=positions[b - 1] + 1, n_scored=count, statistic=total,
                z=score_z(kind, gamma, layers, total, float(count)), log_p=log_p,
                log_p_corrected=min(0.0, log_p + math.log(examined)), n_windows=examined)


# ---- the verdict -------------------------------------------------------------------


def detect(tokenizer, name, master, text, prompt=None, fpr=1e-3, n_perm=None, n_keys=1, min_window=None):
    s = SCHEMES[name]
    info = scheme_info(s)
    key = subkey(master, info)
    normalized = normalize(text)
    text_ids = tokenizer.encode(normalized, bos=False)
    prompt_ids = tokenizer.encode(normalize(prompt), bos=True) if prompt is not None else []
    ids = prompt_ids + text_ids
    n_prompt = len(prompt_ids)
    out = dict(scheme=name, info=info, text=text, prompt=prompt, normalized=normalized, ids=text_ids,
               prompt_ids=prompt_ids, fpr=fpr, n_keys=n_keys)
    if s["kind"] == "exp-edit":
        if n_perm is None:
            n_perm = 999
        r = exp_edit_test(s, master, text_ids, n_perm, n_keys, fpr)
        out.update(statistic_name="edit_alignment", statistic=r["statistic"], log_p=r["log_p"], permutations=n_perm,
                   permutations_done=r["done"], n_scored=min(len(text_ids), 4096))
    else:
        h = needed(s)
        first = max(n_prompt, h)
        seen, scores, values, positions = set(), [], [], []
        ignored_context = min(first, len(ids)) - n_prompt
        ignored_repeated = 0
        for i in range(first, len(ids)):
            score, pair = token_value(s, key, ids[:i], ids[i])
            values.append(score)
            if pair in seen:
                ignored_repeated += 1
                continue
            seen.add(pair)
            scores.append(score)
            positions.append(i - n_prompt)
        t = len(scores)
        out.update(values=values, n_scored=t, n_ignored_context=ignored_context, n_ignored_repeated=ignored_repeated)
        if s["kind"] == "gumbel":
            total = 0.0
            for x in scores:
                total += x
            out.update(statistic_name="gumbel_score", statistic=total, log_p=gamma_log_q(t, total))
        elif s["kind"] == "synthid":
            m = s["layers"]
            ones = sum(sum(g) for g in scores)
            v = synthid_integer_weights(m)
            big_w = sum(sum(vl for vl, g in zip(v, gs) if g) for gs in scores)
            out.update(statistic_name="mean_g", statistic=ones / (t * m) if t else 0.0,
                       green=ones, log_p=binomial_log_sf(ones, t * m, 0.5),
                       weighted_W=big_w, weighted_score=big_w / (t * sum(v)) if t else 0.0,
                       weighted_log_p=synthid_weighted_log_sf(big_w, t, m) if t else 0.0)
        else:
            gamma = 0.5 if s["kind"] == "dipmark" else s["gamma"]
            green = int(sum(scores))
            out.update(statistic_name="green_count", statistic=float(green), log_p=binomial_log_sf(green, t, gamma),
                       z=(green - gamma * t) / math.sqrt(t * gamma * (1 - gamma)) if t else None)
    out["log_p_decision"] = out["log_p"]
    if min_window is not None:
        kind = s["kind"]
        sums = [float(sum(x)) for x in scores] if kind == "synthid" else scores
        gamma = 0.5 if kind == "dipmark" else s.get("gamma", 0.0)
        window = best_window(kind, gamma, s.get("layers", 0), sums, positions, min_window)
        out["min_window"] = min_window
        out["window"] = window
        if window:
            out["log_p_decision"] = min(0.0, min(out["log_p"], window["log_p_corrected"]) + math.log(2.0))
    out["log_p_family"] = min(0.0, out["log_p_decision"] + math.log(n_keys))
    allowance = 1e-9 if s["kind"] == "exp-edit" else 0.0
    out["detected"] = out["log_p_family"] <= math.log(fpr) + allowance
    return out


MASTER = bytes(range(32))
PROMPT = "Once upon a time"
# Generated by `tracemark generate` with the key above, seed 7, temperature 1,
# 120 tokens after PROMPT (SynthID 40: its exact weighted tail here is a
# pure-Python convolution whose cost grows with the square of the length).
TEXTS = {
    "kgw-lefthash": ", there was a queen who loved to catch a farm. She loved to catch a lecture of it, but it was too bossy and so much.\nOne day, Lily's owner saw a little monkey stuck in a tree. She pretended to see that symbols could play with. She wanted a leaf and cut the",
    "kgw-selfhash": ", there was a loyal girl named Mia. She loved to swing and play in the loop all day. One day, she saw a knock with a microphone. Lily was very happy and thanked her friend, the little girl.\nMia said, \"That was not not shy at the mink, Mia! I want to be kind to the microsco",
    "unigram": ", in a very loyace lived in a big pigee. The sun was long and slide driving. The slide wanted to slide. Lucy felt a big place with his pig, but the slide felt very lonely.\nA kind bird flew away for the slide to fly. The fall asked the slide a",
    "dipmark": ", there was a girl named Lily. She was her friend her angry smile because she loved to hide understanding. At bed, her wife came back to her house, and soon she got lost in her backyard. \nThe tray was closer too. He sat down and took a lot of surpris",
    "gumbel": ", there was a little girl named Lily who loved to play outside in the park. One day, she found a log near her toy, a cupboard! She was so excited and wanted to find her toy bow. But something unexpected happened. \nHer mommy quickly came along and found her.",
    "synthid": ", there was a little girl named Sue. Sue loved to play with her toys. One day, they found a big ball and mad",
    "exp-edit": ", in a big forest, there lived a fox named Tom. Tom lived in a small cave and saw a man in the forest. The big, frightened thing because he did not know what to do.\nOne day he showed the man some beans to go on a big hill. He was very happy where he met a parade. He",
    "its-edit": ", there was a friend named Tom. Tom was a happy bunny at running. Tom liked to play in the bushes. He always wanted to eat too much, but it was too heavy.\nOne day, Tom went to the store to bunny the stair. He took his burge with his blocks. He was very angry. He want",
}
# Normalisation at work: a decomposed accent, Cyrillic look-alikes inside a
# Latin word and as whole words, a typographic apostrophe, a zero-width space,
# a provenance manifest (U+FEFF and variation selectors), CRLF and a run of spaces.
NORMALIZATION_TEXT = ("Cafe\u0301 \u0440\u0430ypal  \u0430nd \u041e\u041a,\r\nit\u2019s a\u200bll "
                      "\u0443es\ufeff\ufe00\U000e0100")


def markdown(path):
    """The spec's test-vector section from the vectors file."""
    data = json.load(open(path))
    out = ["Master key `00 01 .. 1f` (key id `%s`); tokenizer stories260K's `tok512.bin`; prompt, where given, "
           "`%s`. Every number below is in `tests/data/detect_vectors.json` (with the ids and per-token values of "
           "each vector), written by `python3 docs/reference/tm_detect.py tok512.bin` and checked by "
           "`tests/test_detect_vectors.c`. `ctx` = tokens without full history, `rep` = repeated pairs, "
           "ln p exact (to the digits shown)." % (data["key_id"], PROMPT), "",
           "| # | scheme | prompt | keys | fpr | tokens | scored | ctx | rep | statistic | ln p | ln p family | detected |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for i, v in enumerate(data["vectors"]):
        extra = ""
        if v["statistic_name"] == "mean_g":
            extra = " (B = %d; weighted W = %d, ln p %.10g)" % (v["green"], v["weighted_W"], v["weighted_log_p"])
        if v["statistic_name"] == "edit_alignment":
            extra = " (N = %d, run %d)" % (v["permutations"], v["permutations_done"])
        out.append("| %d | %s | %s | %d | %g | %d | %d | %s | %s | %s = %.17g%s | %.12g | %.12g | %s |" % (
            i, v["scheme"], "yes" if v["prompt"] is not None else "no", v["n_keys"], v["fpr"], len(v["ids"]),
            v["n_scored"], v.get("n_ignored_context", "-"), v.get("n_ignored_repeated", "-"), v["statistic_name"],
            v["statistic"], extra, v["log_p"], v["log_p_family"], "yes" if v["detected"] else "no"))
    for i, v in enumerate(data["vectors"]):
        w = v.get("window")
        if w:
            out += ["", "Window of vector #%d (min_window %d): tokens %d-%d, %d scored, statistic %g, z %.12g, "
                    "ln p %.12g, corrected over %d windows %.12g; decision ln p = min(0, ln 2 + min(%.12g, %.12g)) "
                    "= %.12g, so the whole text alone (ln p %.12g <= ln 0.001) would be detected, with the window "
                    "search it is %s." % (i, v["min_window"], w["start_token"], w["end_token"], w["n_scored"],
                                          w["statistic"], w["z"], w["log_p"], w["n_windows"], w["log_p_corrected"],
                                          v["log_p"], w["log_p_corrected"], v["log_p_decision"], v["log_p"],
                                          "detected" if v["detected"] else "not")]
    norm = next(v for v in data["vectors"] if "\u200b" in v["text"])
    out += ["", "The normalisation vector (#%d), as JSON strings (green: the scored positions in order):" % data["vectors"].index(norm), "",
            "    text       %s" % json.dumps(norm["text"]), "    normalised %s" % json.dumps(norm["normalized"]),
            "    ids        %s" % " ".join(map(str, norm["ids"])),
            "    green      %s" % "".join(str(int(x)) for x in norm["values"]), ""]
    return "\n".join(out)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--markdown":
        print(markdown(sys.argv[2]))
        return
    if len(sys.argv) != 2:
        sys.exit("usage: tm_detect.py TOKENIZER.bin | tm_detect.py --markdown VECTORS.json")
    tokenizer = Tokenizer(sys.argv[1])
    vectors = []
    for name, text in TEXTS.items():
        edit = SCHEMES[name]["kind"] == "exp-edit"
        # EXP/ITS-edit at fpr 0.01 with N = 99 keeps this script's pure-Python alignments quick.
        fpr, n_perm = (0.01, 99) if edit else (1e-3, None)
        vectors.append(detect(tokenizer, name, MASTER, text, PROMPT, fpr=fpr, n_perm=n_perm))
        vectors.append(detect(tokenizer, name, MASTER, text, None, fpr=fpr, n_perm=n_perm))
    vectors.append(detect(tokenizer, "kgw-lefthash", MASTER, NORMALIZATION_TEXT, None))
    vectors.append(detect(tokenizer, "synthid", MASTER, TEXTS["synthid"], PROMPT, n_keys=5))
    # A window: the KGW LeftHash text after 120 tokens of another scheme's text (not watermarked for this key).
    vectors.append(detect(tokenizer, "kgw-lefthash", MASTER, TEXTS["unigram"] + " " + TEXTS["kgw-lefthash"], None,
                          min_window=25))
    json.dump({"master_key": MASTER.hex(), "key_id": tm_prf.key_id(MASTER), "vectors": vectors}, sys.stdout,
              indent=1, ensure_ascii=True)
    print()


if __name__ == "__main__":
    main()
