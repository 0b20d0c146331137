"""The glTF 2.0 binary (GLB) container, shared by the point-cloud and mesh writers.

Layout and constants from the Khronos glTF 2.0 specification, "GLB File Format Specification" and "Accessor Data
Types": a 12-byte header (magic, version, total length), a JSON chunk padded with spaces and an optional BIN chunk
padded with zeros, every chunk 4-byte aligned.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

from ..atomic import atomic_path

GLB_MAGIC = 0x46546C67  # b"glTF" read as a little-endian uint32
GLB_VERSION = 2
CHUNK_JSON = 0x4E4F534A  # b"JSON"
CHUNK_BIN = 0x004E4942  # b"BIN\0"
# Accessor component types and buffer-view targets
FLOAT = 5126
UNSIGNED_BYTE = 5121
UNSIGNED_INT = 5125
ARRAY_BUFFER = 34962
ELEMENT_ARRAY_BUFFER = 34963


def pad4(data: bytes, fill: bytes) -> bytes:
    """Pad `data` to a multiple of 4 bytes (GLB chunks must be 4-byte aligned)."""
    return data + fill * (-len(data) % 4)


def write_glb_file(path: str | os.PathLike, gltf: dict, blob: bytes) -> Path:
    """Write the glTF document `gltf` and its binary buffer `blob` (may be empty) as one GLB file, atomically."""
    json_chunk = pad4(json.dumps(gltf, separators=(",", ":")).encode("utf-8"), b" ")
    chunks = [(json_chunk, CHUNK_JSON)]
    if blob:
        chunks.append((pad4(blob, b"\0"), CHUNK_BIN))
    total = 12 + sum(8 + len(data) for data, _ in chunks)
    target = Path(path)
    with atomic_path(target) as tmp, open(tmp, "xb") as f:
        f.write(struct.pack("<III", GLB_MAGIC, GLB_VERSION, total))
        for data, kind in chunks:
            f.write(struct.pack("<II", len(data), kind))
            f.write(data)
    return target
