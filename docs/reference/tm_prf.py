"""Independent reference of tracemark's watermark PRF (docs/watermark-spec.md),
written from the spec in plain Python (standard library only). It produces the
spec's test vectors, which the C tests check; it is never used by the product.

    subkey(master: bytes, info: str) -> (k0, k1)    HKDF-SHA256, salt "tracemark-wm-v1", 16 bytes
    siphash24(k0, k1, data: bytes) -> int           SipHash-2-4
    prf(k0, k1, domain, tokens, extra) -> int       SipHash of domain||n||tokens(u32le)||extra(u32le)
    uniform(x) -> float                             ((x >> 12) + 0.5) * 2**-52
    key_id(master) -> str, key_file(master) -> str  the key id and a v1 key file's text
    describe(scheme, **fields) -> str               the canonical description (HKDF info)

`python3 tm_prf.py` checks the SipHash paper and RFC 5869 vectors and prints
"ok"; `python3 tm_prf.py vectors` prints the spec's test vectors.
"""
import hashlib
import hmac
import struct

MASK = (1 << 64) - 1


def hkdf_sha256(key: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    prk = hmac.new(salt, key, hashlib.sha256).digest()
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def subkey(master: bytes, info: str):
    raw = hkdf_sha256(master, b"tracemark-wm-v1", info.encode(), 16)
    return struct.unpack("<QQ", raw)


def _rotl(x, b):
    return ((x << b) | (x >> (64 - b))) & MASK


def siphash24(k0: int, k1: int, data: bytes) -> int:
    v0, v1 = 0x736F6D6570736575 ^ k0, 0x646F72616E646F6D ^ k1
    v2, v3 = 0x6C7967656E657261 ^ k0, 0x7465646279746573 ^ k1

    def rounds(n):
        nonlocal v0, v1, v2, v3
        for _ in range(n):
            v0 = (v0 + v1) & MASK; v1 = _rotl(v1, 13) ^ v0; v0 = _rotl(v0, 32)
            v2 = (v2 + v3) & MASK; v3 = _rotl(v3, 16) ^ v2
            v0 = (v0 + v3) & MASK; v3 = _rotl(v3, 21) ^ v0
            v2 = (v2 + v1) & MASK; v1 = _rotl(v1, 17) ^ v2; v2 = _rotl(v2, 32)

    whole = len(data) // 8 * 8
    for i in range(0, whole, 8):
        (m,) = struct.unpack("<Q", data[i:i + 8])
        v3 ^= m; rounds(2); v0 ^= m
    last = (len(data) & 0xFF) << 56
    for i, b in enumerate(data[whole:]):
        last |= b << (8 * i)
    v3 ^= last; rounds(2); v0 ^= last
    v2 ^= 0xFF; rounds(4)
    return v0 ^ v1 ^ v2 ^ v3


def prf(k0: int, k1: int, domain: int, tokens, extra: int = 0) -> int:
    tokens = list(tokens)[:16]
    msg = bytes([domain, len(tokens)]) + b"".join(struct.pack("<I", t & 0xFFFFFFFF) for t in tokens)
    msg += struct.pack("<I", extra & 0xFFFFFFFF)
    return siphash24(k0, k1, msg)


def uniform(x: int) -> float:
    return ((x >> 12) + 0.5) * 2.0 ** -52


def key_id(master: bytes) -> str:
    return hashlib.sha256(b"tracemark-key-id-v1" + master).hexdigest()[:16]


def key_file(master: bytes) -> str:
    """The text of a v1 key file holding master (docs/watermark-spec.md, "Key file")."""
    return "tracemark-watermark-key v1\nid: %s\nkey: %s\n" % (key_id(master), master.hex())


def _g17(x: float) -> str:
    """C's printf("%.17g", x) for the finite values a config holds (-0 prints as 0)."""
    if x == 0:
        return "0"
    text = "%.17g" % x  # Python's %-formatting follows C's %g here
    return text


def describe(scheme: str, **f) -> str:
    """The canonical description of a configuration (the HKDF info), written
    from the spec's table, independently of watermark/config.c."""
    if scheme == "kgw":
        return "kgw;seeding=%s;h=%d;gamma=%s;delta=%s" % (f["seeding"], f["h"], _g17(f["gamma"]), _g17(f["delta"]))
    if scheme == "unigram":
        return "unigram;gamma=%s;delta=%s" % (_g17(f["gamma"]), _g17(f["delta"]))
    if scheme == "gumbel":
        return "gumbel;h=%d" % f["h"]
    if scheme == "synthid":
        return "synthid;h=%d;layers=%d" % (f["h"], f["layers"])
    if scheme == "dipmark":
        return "dipmark;h=%d;alpha=%s" % (f["h"], _g17(f["alpha"]))
    if scheme == "exp-edit":
        return "exp-edit;decoder=%s;n=%d" % (f["decoder"], f["n"])
    raise ValueError(scheme)


# The spec's test vectors: the master key 00 01 .. 1f, every shipped
# configuration's description and subkey, and PRF outputs under the
# first subkey. Printed by `python3 tm_prf.py vectors`.
SPEC_MASTER = bytes(range(32))
SPEC_CONFIGS = [
    ("configs/schemes/kgw-lefthash.yaml", describe("kgw", seeding="lefthash", h=1, gamma=0.25, delta=2.0)),
    ("configs/schemes/kgw-selfhash.yaml", describe("kgw", seeding="selfhash", h=4, gamma=0.25, delta=2.0)),
    ("configs/schemes/unigram.yaml", describe("unigram", gamma=0.5, delta=2.0)),
    ("configs/schemes/gumbel.yaml", describe("gumbel", h=4)),
    ("configs/schemes/synthid.yaml", describe("synthid", h=4, layers=30)),
    ("configs/schemes/dipmark.yaml", describe("dipmark", h=5, alpha=0.45)),
    ("configs/schemes/exp-edit.yaml", describe("exp-edit", decoder="exp", n=256)),
    ("configs/schemes/its-edit.yaml", describe("exp-edit", decoder="its", n=256)),
]
SPEC_PRF_INPUTS = [  # (domain, tokens, extra), all under the subkey of SPEC_CONFIGS[0]
    (0x01, [], 0),
    (0x01, [42], 0),
    (0x01, [42], 7),
    (0x02, [1, 2, 3, 4, 5], 1000),
    (0x03, [], 31999),
    (0x04, [450, 12, 9, 301], 77),
    (0x05, [31999, 0, 17, 2], 29),
    (0x06, [-1], 4294967295),
    (0x07, [], 255),
    (0x08, list(range(16)), 65535),
]


def message(domain: int, tokens, extra: int) -> bytes:
    tokens = list(tokens)[:16]
    return bytes([domain, len(tokens)]) + b"".join(struct.pack("<I", t & 0xFFFFFFFF) for t in tokens) + \
        struct.pack("<I", extra & 0xFFFFFFFF)


def print_vectors():
    print("master key:", SPEC_MASTER.hex())
    print("key id:    ", key_id(SPEC_MASTER))
    for path, info in SPEC_CONFIGS:
        k0, k1 = subkey(SPEC_MASTER, info)
        print("%-36s %-46s k0=%016x k1=%016x" % (path, info, k0, k1))
    k0, k1 = subkey(SPEC_MASTER, SPEC_CONFIGS[0][1])
    for domain, tokens, extra in SPEC_PRF_INPUTS:
        x = prf(k0, k1, domain, tokens, extra)
        print("domain=0x%02x tokens=%s extra=%d message=%s prf=%016x uniform=%.17g" %
              (domain, tokens, extra, message(domain, tokens, extra).hex(), x, uniform(x)))


if __name__ == "__main__":
    import sys

    # SipHash-2-4 paper vector: key 00..0f, message 00..0e -> a129ca6149be45e5
    k0, k1 = struct.unpack("<QQ", bytes(range(16)))
    assert siphash24(k0, k1, bytes(range(15))) == 0xA129CA6149BE45E5
    # RFC 5869, test case 1 (HKDF-SHA256), for the HKDF written above
    okm = hkdf_sha256(bytes.fromhex("0b" * 22), bytes.fromhex("000102030405060708090a0b0c"),
                      bytes.fromhex("f0f1f2f3f4f5f6f7f8f9"), 42)
    assert okm.hex() == ("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
                         "34007208d5b887185865"), okm.hex()
    if len(sys.argv) > 1 and sys.argv[1] == "vectors":
        print_vectors()
    else:
        print("ok")
