"""Generate mmkd's synthetic shape datasets.

    python tools/misc/generate_synthetic_data.py det --out data/synthetic_coco --num-train 400 --num-val 100 \
        --img-size 128 --seed 0 [--num-classes 8]
    python tools/misc/generate_synthetic_data.py cls --out data/synthetic_cifar --num-train 5000 --num-val 1000 \
        --seed 0 [--num-classes 10]

``det`` writes COCO json + PNG images, ``cls`` writes 32x32 images in the CIFAR-100 python format (``--num-val``
is the size of its ``test`` split). An output whose manifest matches the arguments is reused unless ``--force``.
"""
import argparse
import json
import time

from mmkd.datasets.synthetic import generate_cifar_like, generate_coco_detection


def parse_args(argv=None) -> argparse.Namespace:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument('--out', required=True, help='output directory')
    common.add_argument('--num-train', type=int, default=400, help='training images')
    common.add_argument('--num-val', type=int, default=100, help='validation (cls: test) images')
    common.add_argument('--seed', type=int, default=0)
    common.add_argument('--num-workers', type=int, default=0, help='render in this many processes')
    common.add_argument('--force', action='store_true', help='regenerate even if the manifest matches')
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest='task', required=True)
    det = sub.add_parser('det', parents=[common], help='COCO-format detection set')
    det.add_argument('--img-size', type=int, default=128, help='square image side in pixels')
    det.add_argument('--min-object-size', type=int, default=8, help='smallest object size in pixels')
    det.add_argument('--num-classes', type=int, default=8)
    cls = sub.add_parser('cls', parents=[common], help='32x32 CIFAR-100-format classification set')
    cls.add_argument('--num-classes', type=int, default=10)
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    start = time.perf_counter()
    common = dict(num_train=args.num_train, seed=args.seed, num_classes=args.num_classes,
                  num_workers=args.num_workers, force=args.force)
    if args.task == 'det':
        paths = generate_coco_detection(args.out, num_val=args.num_val, img_size=args.img_size,
                                        min_object_size=args.min_object_size, **common)
    else:
        paths = generate_cifar_like(args.out, num_test=args.num_val, **common)
    print(json.dumps(paths, indent=2))
    print(f'done in {time.perf_counter() - start:.1f} s')
    return paths


if __name__ == '__main__':
    main()
