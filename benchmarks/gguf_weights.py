#!/usr/bin/env python3
"""Bytes of weights a decode step reads from a GGUF file, for the bandwidth bound
of benchmarks/run.sh: every tensor in full except the token embedding table, of
which one row is read (unless the model has no output.weight and reuses the table
as its classifier, in which case the whole table is read). Reads only the header;
tensor sizes come from ggml's block sizes, or from the distance to the next tensor
for a type this table does not know. Prints one JSON object.
usage: gguf_weights.py MODEL.gguf"""
import json
import os
import struct
import sys

# ggml type id -> (name, elements per block, bytes per block)
TYPES = {0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20), 6: ("Q5_0", 32, 22),
         7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 9: ("Q8_1", 32, 36), 10: ("Q2_K", 256, 84),
         11: ("Q3_K", 256, 110), 12: ("Q4_K", 256, 144), 13: ("Q5_K", 256, 176), 14: ("Q6_K", 256, 210),
         15: ("Q8_K", 256, 292), 30: ("BF16", 1, 2)}
SCALAR = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def fail(message):
    sys.exit(f"gguf_weights: {sys.argv[1]}: {message}")


def main():
    if len(sys.argv) != 2 or sys.argv[1] == "--help":
        sys.exit(__doc__.split("usage: ")[1])
    path = sys.argv[1]
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        def read(fmt):
            n = struct.calcsize("<" + fmt)
            data = f.read(n)
            if len(data) != n:
                fail("truncated header")
            return struct.unpack("<" + fmt, data)

        def read_string():
            (n,) = read("Q")
            if n > size:
                fail("string length past the end of the file")
            return f.read(n)

        def skip_value(kind):
            if kind in SCALAR:
                f.seek(SCALAR[kind], 1)
            elif kind == 8:
                read_string()
            elif kind == 9:
                element, count = read("IQ")
                if element in SCALAR:
                    f.seek(SCALAR[element] * count, 1)
                else:
                    for _ in range(count):
                        skip_value(element)
            else:
                fail(f"unknown metadata type {kind}")

        if f.read(4) != b"GGUF":
            fail("not a GGUF file")
        version, n_tensors, n_kv = read("IQQ")
        alignment = 32
        for _ in range(n_kv):
            key = read_string()
            (kind,) = read("I")
            if key == b"general.alignment" and kind == 4:
                (alignment,) = read("I")
            else:
                skip_value(kind)
        tensors = []
        for _ in range(n_tensors):
            name = read_string().decode("utf-8", "replace")
            (n_dims,) = read("I")
            dims = read("Q" * n_dims)
            kind, offset = read("IQ")
            elements = 1
            for d in dims:
                elements *= d
            tensors.append({"name": name, "dims": dims, "type": kind, "offset": offset, "elements": elements})
        data_start = (f.tell() + alignment - 1) // alignment * alignment
    by_offset = sorted(tensors, key=lambda t: t["offset"])
    for i, t in enumerate(by_offset):
        end = by_offset[i + 1]["offset"] if i + 1 < len(by_offset) else size - data_start
        if t["type"] in TYPES:
            _, block, block_bytes = TYPES[t["type"]]
            t["bytes"] = t["elements"] // block * block_bytes
        else:
            t["bytes"] = end - t["offset"]
    names = {t["name"] for t in tensors}
    per_token = 0
    types = {}
    for t in tensors:
        type_name = TYPES.get(t["type"], (f"type{t['type']}",))[0]
        types[type_name] = types.get(type_name, 0) + t["bytes"]
        if t["name"] == "token_embd.weight" and "output.weight" in names:
            per_token += t["bytes"] // max(t["dims"][-1], 1)  # one row of the table
        else:
            per_token += t["bytes"]
    print(json.dumps({"file_bytes": size, "weight_bytes": sum(t["bytes"] for t in tensors),
                      "decode_bytes_per_token": per_token, "tensors": len(tensors), "bytes_by_type": types}))


main()
