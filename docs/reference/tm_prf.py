"""Independent reference of tracemark's watermark PRF (docs/watermark-spec.md),
written from the spec in plain Python (standard library only). It produces the
spec's test vectors, which the C tests check; it is never used by the product.

    subkey(master: bytes, info: str) -> (k0, k1)    HKDF-SHA256, salt "tracemark-wm-v1", 16 bytes
    siphash24(k0, k1, data: bytes) -> int           SipHash-2-4
    prf(k0, k1, domain, tokens, extra) -> int       SipHash of domain||n||tokens(u32le)||extra(u32le)
    uniform(x) -> float                             ((x >> 11) + 0.5) * 2**-53
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
    return ((x >> 11) + 0.5) * 2.0 ** -53


def key_id(master: bytes) -> str:
    return hashlib.sha256(b"tracemark-key-id-v1" + master).hexdigest()[:16]


if __name__ == "__main__":
    # SipHash-2-4 paper vector: key 00..0f, message 00..0e -> a129ca6149be45e5
    k0, k1 = struct.unpack("<QQ", bytes(range(16)))
    assert siphash24(k0, k1, bytes(range(15))) == 0xA129CA6149BE45E5
    print("ok")
