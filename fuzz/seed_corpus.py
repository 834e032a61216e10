#!/usr/bin/env python3
"""Seeds the fuzz corpora from the WAMP spec's test vectors (crates/wire/tests/vectors).

Writes one file per byte variant into corpus/decode_<serializer>/, and for the session target
a few message sequences (selector octet, then length-prefixed messages) built from the vectors.
"""
import glob
import hashlib
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
VECTORS = os.path.join(HERE, "..", "crates", "wire", "tests", "vectors", "singlemessage")
SERIALIZERS = {"json": 0, "msgpack": 1, "cbor": 2}  # order of Serializer::ALL is cbor, msgpack, json
SELECTOR = {"cbor": 0, "msgpack": 1, "json": 2}


def write(target, data):
    folder = os.path.join(HERE, "corpus", target)
    os.makedirs(folder, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def main():
    per_serializer = {s: [] for s in SERIALIZERS}
    for path in sorted(glob.glob(os.path.join(VECTORS, "*", "*.json"))):
        with open(path) as f:
            doc = json.load(f)
        for sample in doc.get("samples", []):
            for serializer, variants in sample.get("serializers", {}).items():
                if serializer not in SERIALIZERS:
                    continue
                for variant in variants:
                    data = bytes.fromhex(variant["bytes_hex"])
                    write(f"decode_{serializer}", data)
                    per_serializer[serializer].append(data)
    for serializer, messages in per_serializer.items():
        # A session: every vector message of that serializer, each short enough for one octet.
        frames = b"".join(bytes([len(m)]) + m for m in messages if len(m) < 256)
        write("session", bytes([SELECTOR[serializer]]) + frames)
    write("rawsocket_framing", bytes([0x7F, 0xF1, 0, 0, 0, 0, 0, 5, 1, 0, 0, 3, 2, 0, 0, 0, 0x08, 0, 0, 0]))


if __name__ == "__main__":
    main()
