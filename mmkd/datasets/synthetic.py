"""Deterministic synthetic shape datasets: COCO-format detection and CIFAR-100-format classification.

Every sample is drawn from its own generator seeded by ``(seed, task, split, index)``, so samples can be made in
any order or in parallel and the first ``n`` samples of a split do not depend on how many are asked for. For
fixed numpy/opencv versions the same arguments give byte-identical files.

Scenes: a linear colour gradient plus low-frequency noise as background, non-class clutter (smooth irregular
blobs and poly-lines), the class objects, optional thin foreground lines, then an optional Gaussian blur and
Gaussian pixel noise. Each object has one of :data:`SHAPE_CLASSES`, a random colour and texture (solid, stripes,
checker, noise) drawn independently of its class, a log-uniform size, aspect-ratio jitter and a free rotation.
Colour never tells the class: only the outline does.

Detection (:func:`generate_coco_detection`): 1-7 objects per 128 px image (scaled with the image area), sizes
8 px to ``min(128, 0.75 * img_size)`` px, later objects occluding earlier ones. Visibility is computed with
masks; an object less than 30% visible (or under 12 visible pixels) is dropped and not drawn at all, so every
shape in an image is annotated. Boxes are tight around the visible pixels (ignoring detached one-pixel-wide
slivers); polygons are the outer contours of the visible parts (a ring's hole is not cut out of its polygon; the
area is the visible pixel count).

Classification (:func:`generate_cifar_like`): one roughly centred object per 32x32 image, 14-27 px, with
clutter, up to two occluders (the object stays at least 55% visible) and pixel noise, written in the
CIFAR-100 python-pickle format so a CIFAR-100 reader reads it unchanged.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import struct
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, Sequence

import cv2
import numpy as np

__all__ = ['SHAPE_CLASSES', 'DET_CLASSES', 'CLS_CLASSES', 'generate_coco_detection', 'generate_cifar_like',
           'render_detection_image', 'render_classification_image', 'sample_rng']

SHAPE_CLASSES = ('circle', 'square', 'triangle', 'star', 'cross', 'ring', 'hexagon', 'crescent', 'heart',
                 'arrow', 'semicircle', 'l_shape')
DET_CLASSES = SHAPE_CLASSES[:8]  # default detection classes (num_classes=8)
CLS_CLASSES = SHAPE_CLASSES[:10]  # default classification classes (num_classes=10)
GENERATOR_VERSION = 1  # bump whenever the pixels or annotations a given set of arguments produce change
MANIFEST = 'manifest.json'
CIFAR_SIZE = 32

_TASKS = {'det': 0, 'cls': 1}
_SPLITS = {'train': 0, 'val': 1, 'test': 2}
_SHIFT = 4  # sub-pixel bits for cv2.fillPoly / polylines
_MIN_VISIBLE = 0.3  # detection: drop objects more than 70% occluded
_MIN_PIXELS = 12


# ----------------------------------------------------------------------------------------------- shapes
def _ngon(n: int, r: float = 1., phase: float = -np.pi / 2) -> np.ndarray:
    a = phase + 2 * np.pi * np.arange(n) / n
    return np.stack([np.cos(a), np.sin(a)], 1) * r


def _arc(cx: float, cy: float, r: float, a0: float, a1: float, n: int = 24) -> np.ndarray:
    a = np.linspace(a0, a1, n)
    return np.stack([cx + r * np.cos(a), cy + r * np.sin(a)], 1)


def _crescent() -> np.ndarray:
    # unit circle minus a circle of radius 0.8 centred at (0.5, 0): x^2 - (x - 0.5)^2 = 1 - 0.8^2 where they meet
    x = 0.61
    outer = np.arctan2(np.sqrt(1 - x * x), x)
    inner = np.arctan2(np.sqrt(1 - x * x), x - 0.5)
    return np.concatenate([_arc(0, 0, 1, outer, 2 * np.pi - outer, 40),
                           _arc(0.5, 0, 0.8, 2 * np.pi - inner, inner, 30)])


def _heart() -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    return np.stack([16 * np.sin(t)**3,
                     -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))], 1)


def _normalise(outer: np.ndarray, hole: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Centre the outline's box on the origin and scale its longer side to 2 (the box spans [-1, 1])."""
    lo, hi = outer.min(0), outer.max(0)
    centre, half = (lo + hi) / 2, (hi - lo).max() / 2
    return (outer - centre) / half, None if hole is None else (hole - centre) / half


_star = np.stack([_ngon(5), _ngon(5, 0.4, -np.pi / 2 + np.pi / 5)], 1).reshape(-1, 2)
_UNIT_SHAPES = tuple(_normalise(*s) for s in (
    (_ngon(64), ),
    (np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], float), ),
    (_ngon(3), ),
    (_star, ),
    (np.array([[-.3, -1], [.3, -1], [.3, -.3], [1, -.3], [1, .3], [.3, .3], [.3, 1], [-.3, 1], [-.3, .3],
               [-1, .3], [-1, -.3], [-.3, -.3]]), ),
    (_ngon(64), _ngon(64, 0.55)),
    (_ngon(6, phase=0), ),
    (_crescent(), ),
    (_heart(), ),
    (np.array([[-1, -.25], [.2, -.25], [.2, -.65], [1, 0], [.2, .65], [.2, .25], [-1, .25]]), ),
    (_arc(0, 0, 1, 0, np.pi, 33), ),
    (np.array([[-1, -1], [-.35, -1], [-.35, .35], [1, .35], [1, 1], [-1, 1]], float), ),
))
assert len(_UNIT_SHAPES) == len(SHAPE_CLASSES)


def _blob(rng: np.random.Generator) -> np.ndarray:
    """A smooth irregular outline (low-order Fourier radius): clutter that is none of the classes."""
    t = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    k = np.arange(2, 5)[:, None]
    r = 1 + (rng.uniform(0.08, 0.25, (3, 1)) * np.cos(k * t + rng.uniform(0, 2 * np.pi, (3, 1)))).sum(0)
    return np.stack([r * np.cos(t), r * np.sin(t)], 1)


# ---------------------------------------------------------------------------------------------- drawing
def _pose(rng: np.random.Generator, pts: Sequence[np.ndarray | None], size: float, hw: tuple[int, int],
          centre: np.ndarray | None = None) -> list[np.ndarray | None]:
    """Scale (longer side ``size`` px, aspect 0.7-1 on a random axis), rotate and place unit outlines.

    Without ``centre`` the object is placed at random so that it lies inside the image when it fits.
    """
    sx, sy = size / 2, size / 2 * rng.uniform(0.7, 1.)
    if rng.random() < 0.5:
        sx, sy = sy, sx
    a = rng.uniform(0, 2 * np.pi)
    rot = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
    pts = [None if p is None else (p * (sx, sy)) @ rot for p in pts]
    if centre is None:
        lo, hi = pts[0].min(0), pts[0].max(0)
        room_lo, room_hi = -lo, np.array(hw[::-1]) - 1 - hi
        centre = np.where(room_hi >= room_lo, rng.uniform(room_lo, np.maximum(room_lo, room_hi)),
                          (room_lo + room_hi) / 2)
    return [None if p is None else p + centre for p in pts]


def _fill(pts: Sequence[np.ndarray | None], hw: tuple[int, int]) -> np.ndarray:
    """Boolean mask of the first outline minus the second (a hole), if any."""
    masks = []
    for p in pts:
        m = np.zeros(hw, np.uint8)
        if p is not None:
            cv2.fillPoly(m, [np.rint(p * (1 << _SHIFT)).astype(np.int32)], 1, cv2.LINE_8, _SHIFT)
        masks.append(m.astype(bool))
    return masks[0] & ~masks[1] if len(masks) == 2 else masks[0]


def _shape_mask(rng: np.random.Generator, label: int, size: float, hw: tuple[int, int],
                centre: np.ndarray | None = None) -> np.ndarray:
    return _fill(_pose(rng, _UNIT_SHAPES[label], size, hw, centre), hw)


def _blob_mask(rng: np.random.Generator, size: float, hw: tuple[int, int]) -> np.ndarray:
    return _fill(_pose(rng, [_blob(rng)], size, hw), hw)


def _line_mask(rng: np.random.Generator, hw: tuple[int, int], max_thickness: int) -> np.ndarray:
    """A random 2-4 vertex poly-line."""
    m = np.zeros(hw, np.uint8)
    pts = rng.uniform(0, 1, (rng.integers(2, 5), 2)) * (hw[1] - 1, hw[0] - 1)
    cv2.polylines(m, [np.rint(pts * (1 << _SHIFT)).astype(np.int32)], False, 1,
                  int(rng.integers(1, max_thickness + 1)), cv2.LINE_8, _SHIFT)
    return m.astype(bool)


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Float32 [h, w, 3] linear gradient between two random colours plus low-frequency colour noise."""
    c0, c1 = rng.uniform(0, 255, (2, 3))
    a = rng.uniform(0, 2 * np.pi)
    t = np.cos(a) * np.arange(w)[None, :] + np.sin(a) * np.arange(h)[:, None]
    t = (t - t.min()) / max(np.ptp(t), 1e-6)
    low = rng.normal(0, rng.uniform(5, 25), (4, 4, 3)).astype(np.float32)
    return (c0 + t[..., None] * (c1 - c0)).astype(np.float32) + cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC)


def _paint(rng: np.random.Generator, canvas: np.ndarray, mask: np.ndarray, min_contrast: float = 0.,
           textured: bool = True, px: float = 1.) -> None:
    """Paint ``mask`` in place with a random colour and texture (solid, stripes, checker or noise).

    The base colour is redrawn (at most 8 times) until some channel differs by ``min_contrast`` from the mean
    of what lies underneath. ``px`` is the canvas pixels per output pixel (texture periods are in output pixels).
    """
    x, y, w, h = cv2.boundingRect(mask.astype(np.uint8))
    if w == 0:
        return
    sub, m = canvas[y:y + h, x:x + w], mask[y:y + h, x:x + w]
    under = sub[m].mean(0)
    for _ in range(8):
        base = rng.uniform(0, 255, 3)
        if np.abs(base - under).max() >= min_contrast:
            break
    kind = rng.choice(4, p=[0.4, 0.2, 0.2, 0.2]) if textured else 0
    if kind == 0:
        sub[m] = base
        return
    other = np.clip(base + rng.normal(0, 70, 3), 0, 255)
    if kind == 3:  # smooth noise between the two colours
        s = int(rng.integers(1, 4) * px)
        field = cv2.resize(rng.random((-(-h // s), -(-w // s))).astype(np.float32), (w, h))
    else:
        a, period = rng.uniform(0, np.pi), rng.uniform(2.5, 8) * px
        xx, yy = np.meshgrid(np.arange(x, x + w), np.arange(y, y + h))
        u = np.floor((xx * np.cos(a) + yy * np.sin(a)) / period)
        if kind == 2:  # checker
            u += np.floor((yy * np.cos(a) - xx * np.sin(a)) / period)
        field = (u % 2).astype(np.float32)
    sub[m] = (base + field[..., None] * (other - base))[m]


def _clutter(rng: np.random.Generator, canvas: np.ndarray, blobs: int, lines: int, max_size: float,
             max_thickness: int) -> None:
    hw = canvas.shape[:2]
    for _ in range(blobs):
        _paint(rng, canvas, _blob_mask(rng, np.exp(rng.uniform(np.log(4), np.log(max_size))), hw))
    for _ in range(lines):
        _paint(rng, canvas, _line_mask(rng, hw, max_thickness), textured=False)


def _finish(rng: np.random.Generator, canvas: np.ndarray, blur: bool) -> np.ndarray:
    """Optional Gaussian blur, Gaussian pixel noise, round to uint8."""
    if blur and rng.random() < 0.5:
        canvas = cv2.GaussianBlur(canvas, (0, 0), rng.uniform(0.3, 0.9))
    canvas = canvas + rng.normal(0, rng.uniform(2, 12), canvas.shape).astype(np.float32)
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8)


def _visible_part(visible: np.ndarray) -> tuple[np.ndarray, list[list[int]]]:
    """Drop the one-pixel-wide slivers of a visible mask (outer contour under 3 vertices) and return the
    uint8 mask left with the polygons (outer contours, ``[x0, y0, x1, y1, ...]``) of its parts."""
    visible = visible.astype(np.uint8)
    contours, _ = cv2.findContours(visible, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    slivers = [c for c in contours if len(c) < 3]
    if slivers:
        cv2.drawContours(visible, slivers, -1, 0, cv2.FILLED)
    return visible, [c.reshape(-1).tolist() for c in contours if len(c) >= 3]


def sample_rng(seed: int, task: str, split: str, index: int) -> np.random.Generator:
    """The generator of one sample: a function of ``(seed, task, split, index)`` only."""
    return np.random.default_rng([seed, _TASKS[task], _SPLITS[split], index])


def render_detection_image(rng: np.random.Generator, img_size: int = 128, num_classes: int = 8,
                           min_object_size: int = 8) -> tuple[np.ndarray, list[dict]]:
    """Draw one detection scene (object sizes log-uniform from ``min_object_size`` px).

    Returns:
        RGB uint8 image [img_size, img_size, 3] and one dict per visible object with ``label`` (0-based),
        ``bbox`` [x, y, w, h] (ints, tight around the visible pixels), ``area`` (visible pixels) and
        ``segmentation`` (COCO polygons of the visible mask's outer contours).
    """
    hw = (img_size, img_size)
    scale = (img_size / 128)**2
    canvas = _background(rng, *hw)
    _clutter(rng, canvas, rng.poisson(3 * scale), rng.poisson(2 * scale), 0.4 * img_size, 3)

    max_size = max(float(min_object_size), min(128., 0.75 * img_size))
    labels = rng.integers(0, num_classes, rng.integers(1, min(30, max(2, round(7 * scale))) + 1))
    masks = [_shape_mask(rng, int(c), np.exp(rng.uniform(np.log(min_object_size), np.log(max_size))), hw)
             for c in labels]
    front = [_line_mask(rng, hw, 2) for _ in range(rng.binomial(2, 0.2))]

    # Visibility, last to first: an object is occluded by the kept objects drawn after it and by the front
    # lines. Dropped objects are not drawn, so they never occlude anything.
    occluded = np.logical_or.reduce([np.zeros(hw, bool)] + front)
    kept = []
    for i in reversed(range(len(masks))):
        visible, polygons = _visible_part(masks[i] & ~occluded)
        n = int(visible.sum())
        if n >= _MIN_PIXELS and n >= _MIN_VISIBLE * masks[i].sum():
            x, y, w, h = cv2.boundingRect(visible)
            kept.append((i, dict(label=int(labels[i]), bbox=[x, y, w, h], area=n, segmentation=polygons)))
            occluded |= masks[i]

    for i, _ in reversed(kept):
        _paint(rng, canvas, masks[i], min_contrast=60)
    for m in front:
        _paint(rng, canvas, m, textured=False)
    return _finish(rng, canvas, blur=True), [obj for _, obj in reversed(kept)]


def render_classification_image(rng: np.random.Generator, num_classes: int = 10) -> tuple[np.ndarray, int]:
    """Draw one 32x32 classification image (rendered at 64x64, area-downsampled). Returns (RGB uint8, label)."""
    hw = (2 * CIFAR_SIZE, 2 * CIFAR_SIZE)
    canvas = _background(rng, *hw)
    _clutter(rng, canvas, rng.poisson(2), rng.poisson(2), 20, 3)
    label = int(rng.integers(num_classes))
    centre = (hw[0] - 1) / 2 + rng.uniform(-6, 6, 2)
    mask = _shape_mask(rng, label, rng.uniform(28, 54), hw, centre)
    occluders = []
    for _ in range(rng.integers(0, 3)):
        occ = _blob_mask(rng, rng.uniform(8, 24), hw) if rng.random() < 0.6 else _line_mask(rng, hw, 4)
        if (mask & ~np.logical_or.reduce(occluders + [occ])).sum() >= 0.55 * mask.sum():
            occluders.append(occ)
    _paint(rng, canvas, mask, min_contrast=60, px=2)
    for occ in occluders:
        _paint(rng, canvas, occ, px=2)
    small = cv2.resize(canvas, (CIFAR_SIZE, CIFAR_SIZE), interpolation=cv2.INTER_AREA)
    return _finish(rng, small, blur=False), label


def _det_sample(args: tuple[int, str, int, int, int, int]) -> tuple[bytes, list[dict]]:
    seed, split, index, img_size, num_classes, min_object_size = args
    img, objects = render_detection_image(sample_rng(seed, 'det', split, index), img_size, num_classes,
                                          min_object_size)
    _, png = cv2.imencode('.png', np.ascontiguousarray(img[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 6])
    return png.tobytes(), objects


def _cls_sample(args: tuple[int, str, int, int]) -> tuple[np.ndarray, int]:
    seed, split, index, num_classes = args
    return render_classification_image(sample_rng(seed, 'cls', split, index), num_classes)


# ----------------------------------------------------------------------------------------------- output
def _map(fn: Callable, args: list, num_workers: int) -> Iterable:
    if num_workers <= 1 or len(args) < 2:
        return map(fn, args)
    with ProcessPoolExecutor(num_workers) as pool:
        return list(pool.map(fn, args, chunksize=max(1, len(args) // (4 * num_workers))))


def _check_int(name: str, value: object, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f'{name} must be an int, got {type(value).__name__}')
    if value < low or (high is not None and value > high):
        bound = f'>= {low}' if high is None else f'in [{low}, {high}]'
        raise ValueError(f'{name} must be {bound}, got {value}')


def _check_args(counts: dict[str, int], seed: int, num_classes: int, num_workers: int) -> None:
    for name, n in counts.items():
        _check_int(name, n, 0)
    if sum(counts.values()) == 0:
        raise ValueError(f'{" and ".join(counts)} are all 0: ask for at least one image')
    _check_int('seed', seed, 0)
    _check_int('num_classes', num_classes, 2, len(SHAPE_CLASSES))
    _check_int('num_workers', num_workers, 0)


def _reusable(out: Path, kind: str, args: dict, paths: dict[str, str]) -> bool:
    try:
        manifest = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return (manifest.get('kind'), manifest.get('version'), manifest.get('args')) == (
        kind, GENERATOR_VERSION, args) and all(os.path.exists(p) for p in paths.values())


def _build(out: Path, kind: str, args: dict, classes: tuple[str, ...], write: Callable[[Path], list[Path]]) -> None:
    """Write a dataset into a temporary sibling of ``out``, add the manifest, then swap it in.

    An existing ``out`` is replaced only if it is empty or holds a manifest (i.e. is a previous generation).
    """
    if out.exists() and not (out / MANIFEST).is_file() and any(out.iterdir()):
        raise FileExistsError(f'{out} exists, is not empty and holds no {MANIFEST}: it is not a synthetic '
                              'dataset, so it is not overwritten; pass another out_dir')
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f'.{out.name}.tmp-', dir=out.parent))
    try:
        digest = hashlib.sha256()
        for f in write(tmp):
            digest.update(str(f.relative_to(tmp)).encode() + b'\0' + f.read_bytes())
        manifest = dict(generator=__name__, kind=kind, version=GENERATOR_VERSION, args=args,
                        classes=list(classes), sha256=digest.hexdigest())
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + '\n')
        if out.exists():
            trash = Path(tempfile.mkdtemp(prefix=f'.{out.name}.old-', dir=out.parent))
            os.rename(out, trash / 'old')
            os.rename(tmp, out)
            shutil.rmtree(trash)
        else:
            os.rename(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def generate_coco_detection(out_dir: str | os.PathLike, num_train: int = 400, num_val: int = 100,
                            img_size: int = 128, seed: int = 0, num_classes: int = 8, num_workers: int = 0,
                            force: bool = False, min_object_size: int = 8) -> dict[str, str]:
    """Generate (or reuse) the synthetic COCO-format detection set.

    Layout: ``<out>/images/{train,val}/NNNNNN.png``, ``<out>/annotations/instances_{train,val}.json`` (image
    and annotation ids start at 1, category ids are ``1..num_classes`` named by ``SHAPE_CLASSES[:num_classes]``)
    and ``<out>/manifest.json``. If the manifest matches the arguments the data is reused as it is, unless
    ``force``. ``num_workers`` > 1 renders in that many processes (same output). Object sizes are log-uniform
    from ``min_object_size`` to ``min(128, 0.75 * img_size)`` px.

    Returns:
        ``data_root``, ``train_ann_file``, ``val_ann_file``, ``train_img_dir`` and ``val_img_dir`` (absolute
        paths) for a config's ``data_root``/``ann_file``/``data_prefix``.
    """
    _check_args(dict(num_train=num_train, num_val=num_val), seed, num_classes, num_workers)
    _check_int('img_size', img_size, 32, 1024)
    _check_int('min_object_size', min_object_size, 4, int(0.75 * img_size))
    out = Path(out_dir).absolute()
    paths = dict(data_root=str(out))
    for split in ('train', 'val'):
        paths[f'{split}_ann_file'] = str(out / 'annotations' / f'instances_{split}.json')
        paths[f'{split}_img_dir'] = str(out / 'images' / split)
    args = dict(num_train=int(num_train), num_val=int(num_val), img_size=int(img_size), seed=int(seed),
                num_classes=int(num_classes), min_object_size=int(min_object_size))
    if not force and _reusable(out, 'coco_detection', args, paths):
        return paths
    classes = SHAPE_CLASSES[:num_classes]

    def write(root: Path) -> list[Path]:
        files = []
        (root / 'annotations').mkdir()
        for split, count in (('train', num_train), ('val', num_val)):
            img_dir = root / 'images' / split
            img_dir.mkdir(parents=True)
            images, anns = [], []
            jobs = [(seed, split, i, img_size, num_classes, min_object_size) for i in range(count)]
            for i, (png, objects) in enumerate(_map(_det_sample, jobs, num_workers)):
                name = f'{i:06d}.png'
                (img_dir / name).write_bytes(png)
                files.append(img_dir / name)
                images.append(dict(id=i + 1, file_name=name, width=img_size, height=img_size))
                anns += [dict(id=len(anns) + k + 1, image_id=i + 1, category_id=o['label'] + 1, bbox=o['bbox'],
                              area=o['area'], iscrowd=0, segmentation=o['segmentation'])
                         for k, o in enumerate(objects)]
            coco = dict(info=dict(description='mmkd synthetic shapes (detection)', version=str(GENERATOR_VERSION)),
                        licenses=[], images=images, annotations=anns,
                        categories=[dict(id=k + 1, name=n, supercategory='shape') for k, n in enumerate(classes)])
            ann_file = root / 'annotations' / f'instances_{split}.json'
            ann_file.write_text(json.dumps(coco, separators=(',', ':')))
            files.insert(0, ann_file)
        return files

    _build(out, 'coco_detection', args, classes, write)
    return paths


class _Py2Pickler(pickle._Pickler):
    """Writes ``bytes`` as Python 2 ``str`` (protocol 2), like the real CIFAR files, so both readers work:
    ``pickle.load(f, encoding='bytes')`` gives ``b'data'`` keys and ``encoding='latin1'`` gives ``'data'``."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj: bytes) -> None:
        n = len(obj)
        self.write((pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else pickle.BINSTRING + struct.pack('<i', n)) + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str


def _dump_py2(obj: dict, path: Path) -> None:
    with open(path, 'wb') as f:
        _Py2Pickler(f, protocol=2).dump(obj)


def generate_cifar_like(out_dir: str | os.PathLike, num_train: int = 5000, num_test: int = 1000, seed: int = 0,
                        num_classes: int = 10, num_workers: int = 0, force: bool = False) -> dict[str, str]:
    """Generate (or reuse) the synthetic 32x32 classification set in the CIFAR-100 python format.

    ``<out>/train`` and ``<out>/test`` are pickled dicts with ``b'data'`` (uint8 [N, 3072]: the R, G then B
    planes, each row-major), ``b'fine_labels'`` and ``b'coarse_labels'`` (lists of int; coarse is all 0),
    ``b'filenames'`` and ``b'batch_label'``; ``<out>/meta`` has ``b'fine_label_names'`` (the first
    ``num_classes`` of :data:`SHAPE_CLASSES`) and ``b'coarse_label_names'``. Reuse, ``force`` and
    ``num_workers`` as in :func:`generate_coco_detection`.

    Returns:
        ``data_root``, ``train_file``, ``test_file`` and ``meta_file`` (absolute paths).
    """
    _check_args(dict(num_train=num_train, num_test=num_test), seed, num_classes, num_workers)
    out = Path(out_dir).absolute()
    paths = dict(data_root=str(out), train_file=str(out / 'train'), test_file=str(out / 'test'),
                 meta_file=str(out / 'meta'))
    args = dict(num_train=int(num_train), num_test=int(num_test), seed=int(seed), num_classes=int(num_classes))
    if not force and _reusable(out, 'cifar_like', args, paths):
        return paths
    classes = SHAPE_CLASSES[:num_classes]

    def write(root: Path) -> list[Path]:
        for split, count in (('train', num_train), ('test', num_test)):
            samples = list(_map(_cls_sample, [(seed, split, i, num_classes) for i in range(count)], num_workers))
            data = np.stack([img.transpose(2, 0, 1).reshape(-1) for img, _ in samples]) if samples else \
                np.zeros((0, 3 * CIFAR_SIZE**2), np.uint8)
            labels = [label for _, label in samples]
            _dump_py2({b'filenames': [f'{classes[c]}_s_{i:06d}.png'.encode() for i, c in enumerate(labels)],
                       b'batch_label': f'{split}ing batch 1 of 1'.encode(),
                       b'fine_labels': labels, b'coarse_labels': [0] * count, b'data': data}, root / split)
        _dump_py2({b'fine_label_names': [c.encode() for c in classes], b'coarse_label_names': [b'shape']},
                  root / 'meta')
        return [root / 'train', root / 'test', root / 'meta']

    _build(out, 'cifar_like', args, classes, write)
    return paths
