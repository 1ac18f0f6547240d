"""Minimal safetensors reader/writer (no dependency on the safetensors package).

File layout:
  u64 little-endian N | N bytes of JSON header | data buffer
The header maps each tensor name to {"dtype", "shape", "data_offsets":
[begin, end]} (offsets relative to the start of the data buffer) and may hold
"__metadata__": {str: str}. The header is padded with spaces to a multiple of
8 bytes; tensors are packed in order with no holes.

Supported dtypes: F32, F16, BF16 (BF16 = upper 16 bits of a float32, rounded
to nearest even, as torch.bfloat16 does).
"""
import json
import struct

import numpy as np
import torch

_ITEMSIZE = {"F32": 4, "F16": 2, "BF16": 2, "U8": 1}


def _to_bytes(t, dtype):
    t = t.detach().cpu().contiguous()
    if dtype == "F32":
        return t.to(torch.float32).numpy().astype("<f4").tobytes()
    if dtype == "F16":
        return t.to(torch.float16).numpy().astype("<f2").tobytes()
    if dtype == "BF16":
        bits = t.to(torch.bfloat16).view(torch.int16).numpy()
        return bits.astype("<i2").tobytes()
    raise ValueError("unsupported dtype %r" % dtype)


def round_to(t, dtype):
    """The float64 values a file of this dtype holds for tensor t."""
    if dtype == "F32":
        return t.to(torch.float32).to(torch.float64)
    if dtype == "F16":
        return t.to(torch.float16).to(torch.float64)
    if dtype == "BF16":
        return t.to(torch.bfloat16).to(torch.float64)
    raise ValueError(dtype)


def dumps(tensors, metadata=None, dtype="F32"):
    """tensors: ordered dict name -> torch tensor. dtype: one dtype for all,
    or a dict name -> dtype. Returns the file bytes."""
    header = {}
    if metadata is not None:
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError("metadata must map str to str (%r)" % (k,))
        header["__metadata__"] = dict(metadata)
    chunks = []
    off = 0
    for name, t in tensors.items():
        dt = dtype[name] if isinstance(dtype, dict) else dtype
        b = _to_bytes(t, dt)
        assert len(b) == _ITEMSIZE[dt] * t.numel()
        header[name] = {"dtype": dt, "shape": [int(s) for s in t.shape],
                        "data_offsets": [off, off + len(b)]}
        chunks.append(b)
        off += len(b)
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * ((-len(hb)) % 8)
    return struct.pack("<Q", len(hb)) + hb + b"".join(chunks)


def save(path, tensors, metadata=None, dtype="F32"):
    data = dumps(tensors, metadata, dtype)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    import os
    os.replace(tmp, path)
    return len(data)


def loads(buf):
    """Returns (tensors: dict name -> float32 torch tensor, metadata or None,
    dtypes: dict name -> dtype string)."""
    if len(buf) < 8:
        raise ValueError("truncated file")
    (n,) = struct.unpack("<Q", buf[:8])
    if 8 + n > len(buf):
        raise ValueError("header length beyond file")
    header = json.loads(buf[8:8 + n].decode("utf-8"))
    data = memoryview(buf)[8 + n:]
    meta = header.pop("__metadata__", None)
    out, dtypes = {}, {}
    spans = []
    for name, info in header.items():
        dt = info["dtype"]
        if dt not in _ITEMSIZE:
            raise ValueError("unsupported dtype %r for %s" % (dt, name))
        shape = [int(s) for s in info["shape"]]
        b, e = info["data_offsets"]
        count = int(np.prod(shape)) if shape else 1
        if not (0 <= b <= e <= len(data)) or e - b != count * _ITEMSIZE[dt]:
            raise ValueError("bad data_offsets for %s" % name)
        spans.append((b, e))
        raw = bytes(data[b:e])
        if dt == "F32":
            a = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        elif dt == "F16":
            a = np.frombuffer(raw, dtype="<f2").astype(np.float32)
        elif dt == "U8":  # quantized weight codes (read only)
            a = np.frombuffer(raw, dtype=np.uint8)
        else:
            u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            a = u.view(np.float32)
        out[name] = torch.from_numpy(a.reshape(shape).copy())
        dtypes[name] = dt
    spans.sort()
    pos = 0
    for b, e in spans:
        if b != pos:
            raise ValueError("overlapping tensors or hole in data buffer")
        pos = e
    if pos != len(data):
        raise ValueError("trailing bytes after the last tensor")
    return out, meta, dtypes


def load(path):
    with open(path, "rb") as f:
        return loads(f.read())


if __name__ == "__main__":
    # round trip self-test
    g = torch.Generator().manual_seed(0)
    t = {"a": torch.randn(3, 5, generator=g), "b": torch.randn(7, generator=g),
         "c": torch.randn(2, 2, 2, generator=g)}
    for dt in ("F32", "F16", "BF16"):
        buf = dumps(t, {"k": "v"}, dt)
        (n,) = struct.unpack("<Q", buf[:8])
        assert n % 8 == 0
        back, meta, dts = loads(buf)
        assert meta == {"k": "v"} and all(d == dt for d in dts.values())
        for k in t:
            assert torch.equal(back[k].double(), round_to(t[k], dt)), (dt, k)
    # BF16 round-to-nearest-even check on a tie: 1 + 2^-8 -> 1.0,
    # 1 + 3*2^-8 -> 1 + 2^-6 (ties go to the even mantissa)
    x = torch.tensor([1 + 2 ** -8, 1 + 3 * 2 ** -8], dtype=torch.float32)
    y, _, _ = loads(dumps({"x": x}, None, "BF16"))
    assert y["x"].tolist() == [1.0, 1 + 2 ** -6], y["x"].tolist()
    print("stio self-test passed")
