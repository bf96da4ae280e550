"""What the dlib converters share: reading dlib's portable serialization (dlib/serialize.h,
read, not copied) and writing safetensors with sorted keys, so that the same model always
gives the same bytes (the safetensors package orders the metadata at random)."""

import json
import os
import sys

import numpy as np


class FormatError(Exception):
    pass


class Reader:
    """A cursor over a dlib file's bytes."""

    def __init__(self, data):
        self.data = data
        self.pos = 0

    def take(self, n, what):
        if self.pos + n > len(self.data):
            raise FormatError(f"file ends at byte {len(self.data)} while reading {what}")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def integer(self, what):
        # Control byte: bit 7 = negative, low 4 bits = number of little-endian
        # magnitude bytes that follow; bits 4-6 are always zero.
        if self.pos >= len(self.data):
            raise FormatError(f"file ends at byte {self.pos} while reading {what}")
        ctrl = self.data[self.pos]
        size = ctrl & 0x0F
        if ctrl & 0x70 or size > 8:
            raise FormatError(f"bad integer control byte 0x{ctrl:02x} at byte {self.pos} ({what})")
        self.pos += 1
        mag = int.from_bytes(self.take(size, what), "little")
        return -mag if ctrl & 0x80 else mag

    def unsigned(self, what, limit=1 << 31):
        v = self.integer(what)
        if not 0 <= v < limit:
            raise FormatError(f"{what}: {v} is out of range [0, {limit})")
        return v

    def real(self, what):
        # Scalars are not IEEE bytes: a float_details, the integer mantissa then
        # the integer exponent (value = m * 2^e; exponents 32000/32001/32002 mean
        # inf/-inf/nan). serialize.h's prose says exponent first; the code writes
        # the mantissa first. The old ASCII encoding sets bits 0x70 of the first byte.
        if self.pos < len(self.data) and self.data[self.pos] & 0x70:
            raise FormatError(f"old ASCII float encoding at byte {self.pos} ({what}) is not supported")
        m = self.integer(what + " mantissa")
        e = self.integer(what + " exponent")
        special = {32000: np.inf, 32001: -np.inf, 32002: np.nan}
        if e in special:
            return special[e]
        return float(np.ldexp(np.float64(m), e))


def write_safetensors(tensors, metadata, dst):
    """Writes f32 and i32 `tensors` (a dict of numpy arrays) and string `metadata` to `dst`
    as safetensors, keys sorted, through a temporary file renamed into place."""
    dtypes = {np.dtype("<f4"): "F32", np.dtype("<i4"): "I32"}
    header, offset, blobs = {"__metadata__": metadata}, 0, []
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        array = array.astype(array.dtype.newbyteorder("<"), copy=False)
        blob = array.tobytes()
        header[name] = {"dtype": dtypes[array.dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned
    with open(dst + ".tmp", "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for blob in blobs:
            f.write(blob)
    os.replace(dst + ".tmp", dst)


def convert(argv, what, parse, describe):
    """The converters' command line, `MODEL.dat OUT.safetensors`: `parse(bytes)` reads the
    model, `describe(parsed)` gives its (tensors, metadata). Returns the exit status: 2 for a
    wrong command line, 1 for an unreadable or malformed file (nothing written), 0 when written."""
    if len(argv) != 3:
        print(f"usage: {argv[0]} MODEL.dat OUT.safetensors", file=sys.stderr)
        return 2
    src, dst = argv[1], argv[2]
    try:
        with open(src, "rb") as f:
            data = f.read()
        parsed = parse(data)
    except OSError as e:
        print(f"error: cannot read {src}: {e}", file=sys.stderr)
        return 1
    except (FormatError, ValueError, OverflowError) as e:
        print(f"error: {src} is not a valid {what}: {e}", file=sys.stderr)
        return 1
    tensors, metadata = describe(parsed)
    write_safetensors(tensors, metadata, dst)
    print(f"wrote {len(tensors)} tensors to {dst}")
    return 0
