#!/usr/bin/env python3
"""Generate tests/data/io/ fixtures for the eval transform and the PNG
class-folder dataset.

The expected outputs follow timm's evaluation transform on PIL images:

    Resize(math.floor(size / crop_pct), interpolation=BICUBIC)   # torchvision
    CenterCrop(size)                                             # torchvision
    ToTensor(); Normalize(mean, std)

torchvision is not needed: its Resize(int) / CenterCrop / ToTensor /
Normalize semantics for PIL images are spelled out below (a few lines each)
and the resampling itself is PIL's Image.resize(..., BICUBIC), which is what
torchvision calls. Requires python3-pil and python3-numpy.

Usage: python3 tests/reference/make_resize_fixture.py [out_dir]
(default: tests/data/io next to this script's tests/ folder).
"""
import json
import math
import os
import struct
import sys

import numpy as np
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def tv_resize(img, size):
    """torchvision.transforms.Resize(size: int) on a PIL image."""
    w, h = img.size
    short, long_ = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long_ / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    return img.resize((new_w, new_h), Image.BICUBIC)


def tv_center_crop(img, crop_h, crop_w):
    """torchvision.transforms.CenterCrop((crop_h, crop_w)) on a PIL image."""
    w, h = img.size
    if crop_w > w or crop_h > h:
        left = (crop_w - w) // 2 if crop_w > w else 0
        top = (crop_h - h) // 2 if crop_h > h else 0
        right = (crop_w - w + 1) // 2 if crop_w > w else 0
        bottom = (crop_h - h + 1) // 2 if crop_h > h else 0
        padded = Image.new(img.mode, (w + left + right, h + top + bottom), 0)
        padded.paste(img, (left, top))
        img = padded
        w, h = img.size
        if crop_w == w and crop_h == h:
            return img
    top = int(round((h - crop_h) / 2.0))
    left = int(round((w - crop_w) / 2.0))
    return img.crop((left, top, left + crop_w, top + crop_h))


def to_tensor_normalize(img, mean, std):
    a = np.asarray(img, dtype=np.uint8)
    if a.ndim == 2:
        a = a[:, :, None]
    x = a.astype(np.float32).transpose(2, 0, 1) / np.float32(255)
    m = np.array(mean, dtype=np.float32)[:, None, None]
    s = np.array(std, dtype=np.float32)[:, None, None]
    return ((x - m) / s).astype(np.float32)


def eval_transform(img, size, crop_pct, mean, std):
    scale_size = math.floor(size / crop_pct)  # timm transforms_factory
    img = tv_resize(img, scale_size)
    img = tv_center_crop(img, size, size)
    return to_tensor_normalize(img, mean, std)


def image_folder_files(root):
    """torchvision ImageFolder's class list and file order (PNG only;
    hidden folders skipped as libsardfq does)."""
    classes = sorted(e.name for e in os.scandir(root)
                     if e.is_dir() and not e.name.startswith('.'))
    out = []
    for ci, c in enumerate(classes):
        for dirpath, _, fnames in sorted(os.walk(os.path.join(root, c), followlinks=True)):
            for f in sorted(fnames):
                if f.lower().endswith('.png'):
                    out.append((os.path.join(dirpath, f), ci))
    return out


def write_safetensors(path, tensors, metadata):
    header = {"__metadata__": metadata}
    blobs = []
    off = 0
    for name, arr in tensors:
        dt = {np.dtype(np.float32): "F32", np.dtype(np.uint8): "U8",
              np.dtype(np.int32): "I32"}[arr.dtype]
        b = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder('<')).tobytes()
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def smooth_noise(rng, h, w, c):
    """Textured test image: gradients, a sharp edge, some noise."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w, c))
    for k in range(c):
        img[:, :, k] = (128 + 100 * np.sin(xx / (3.0 + k) + yy / 5.0)
                        + 60 * np.cos(yy / (2.0 + k)))
    img[h // 3:h // 2, :, :] = 250  # sharp band: exercises overshoot clamping
    img[:, w // 4:w // 4 + 2, :] = 3
    img += rng.normal(0, 20, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, '..', 'data', 'io')
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(1234)

    rgb = Image.fromarray(smooth_noise(rng, 45, 61, 3), 'RGB')      # landscape
    gray = Image.fromarray(smooth_noise(rng, 52, 40, 1)[:, :, 0], 'L')  # portrait
    small = Image.fromarray(smooth_noise(rng, 9, 13, 3), 'RGB')     # upscaling
    rgba_arr = rng.integers(0, 256, (5, 7, 4), dtype=np.uint8)
    rgba = Image.fromarray(rgba_arr, 'RGBA')
    # 16-bit gray without gAMA: read back as v / 257 (here 0, 17, ..., 255)
    Image.fromarray((np.arange(16, dtype=np.uint16) * 4369).reshape(1, 16)).save(
        os.path.join(out, 'gray16.png'))
    rgb.save(os.path.join(out, 'resize_rgb.png'))
    gray.save(os.path.join(out, 'resize_gray.png'))
    small.save(os.path.join(out, 'resize_small.png'))
    rgba.save(os.path.join(out, 'resize_rgba.png'))

    # (tensor name, image, size, crop_pct, mean, std); the C test mirrors it.
    cases = [
        ('rgb_24_0.875', rgb, 24, 0.875, IMAGENET_MEAN, IMAGENET_STD),
        ('rgb_32_0.9', rgb, 32, 0.9, IMAGENET_MEAN, IMAGENET_STD),
        ('rgb_16_1.0', rgb, 16, 1.0, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
        ('rgb_40_0.8', rgb, 40, 0.8, IMAGENET_MEAN, IMAGENET_STD),
        ('rgb_24_1.5', rgb, 24, 1.5, IMAGENET_MEAN, IMAGENET_STD),  # crop > image: padding
        ('gray_24_0.875', gray.convert('L'), 24, 0.875, (0.1307,), (0.3081,)),
        ('small_24_0.875', small, 24, 0.875, IMAGENET_MEAN, IMAGENET_STD),
        ('small_20_0.5', small, 20, 0.5, IMAGENET_MEAN, IMAGENET_STD),
    ]
    tensors = []
    for name, img, size, cp, mean, std in cases:
        tensors.append((name, eval_transform(img, size, cp, mean, std)))
    tensors.append(('rgba_as_rgb', np.asarray(rgba.convert('RGB'), dtype=np.uint8)))

    # Class-folder dataset: two classes, mixed-case extensions, a nested
    # folder, a non-image file that must be ignored.
    root = os.path.join(out, 'classes')
    for d in ('cat', 'dog', os.path.join('dog', 'sub')):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    files = {
        os.path.join('cat', 'b.png'): smooth_noise(rng, 20, 26, 3),
        os.path.join('cat', 'a.PNG'): smooth_noise(rng, 18, 18, 3),
        os.path.join('dog', 'x.png'): smooth_noise(rng, 30, 17, 3),
        os.path.join('dog', 'sub', 'y.png'): smooth_noise(rng, 16, 16, 1)[:, :, 0],
    }
    for rel, arr in files.items():
        Image.fromarray(arr).save(os.path.join(root, rel))
    with open(os.path.join(root, 'dog', 'notes.txt'), 'w') as f:
        f.write('not an image\n')
    ds = image_folder_files(root)
    imgs = [eval_transform(Image.open(p).convert('RGB'), 16, 0.875, IMAGENET_MEAN, IMAGENET_STD)
            for p, _ in ds]
    tensors.append(('dataset_16', np.stack(imgs)))
    tensors.append(('dataset_labels', np.array([c for _, c in ds], dtype=np.int32)))
    order = ';'.join(os.path.relpath(p, root) for p, _ in ds)

    meta = {
        'generator': 'tests/reference/make_resize_fixture.py',
        'pil_version': Image.__version__ if hasattr(Image, '__version__') else 'unknown',
        'dataset_order': order,
        'cases': ';'.join('%s:%d:%r' % (n, s, cp) for n, _, s, cp, _, _ in cases),
    }
    write_safetensors(os.path.join(out, 'resize_expected.safetensors'), tensors, meta)
    print('wrote fixtures to', os.path.normpath(out))


if __name__ == '__main__':
    main()
