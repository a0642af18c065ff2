# Copyright (c) OpenMMLab. All rights reserved.
"""Turn a distillation checkpoint into a plain student checkpoint.

A distillation checkpoint holds ``architecture.*`` (the student),
``teacher.*``, ``distiller.*`` and ``class_means.*`` weights plus the
optimizer, parameter schedulers and message hub. The result keeps only the
student weights with the ``architecture.`` prefix stripped, and ``meta``
(marked as converted), so it loads into the student's own mmdet config:
``tools/test.py STUDENT_CONFIG STUDENT_CKPT``.

Same interface as mmrazor's converter, but loads with ``weights_only=True``
(works on torch >= 2.6 through ``mmkd.compat``'s allow-list), never
overwrites its input without ``--inplace`` and writes atomically.
"""
import argparse
import os
import os.path as osp
import sys
import tempfile
from collections import Counter

sys.path.insert(
    0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import mmkd  # noqa: E402,F401  (allow-lists mmengine's checkpoint types)
import torch  # noqa: E402

STUDENT_PREFIX = 'architecture.'


def parse_args():
    parser = argparse.ArgumentParser(
        description='Convert a KD checkpoint to a student-only checkpoint')
    parser.add_argument('checkpoint', help='input checkpoint filename')
    parser.add_argument(
        '--out-path',
        help='output file, or a directory to write <name>_student.pth in '
        '(default: next to the input)')
    parser.add_argument(
        '--inplace', action='store_true', help='replace the input checkpoint')
    return parser.parse_args()


def convert(checkpoint: dict, source: str) -> dict:
    """Return the student-only checkpoint of a distillation ``checkpoint``."""
    state_dict = checkpoint.get('state_dict')
    if not isinstance(state_dict, dict):
        raise ValueError(f'{source} has no "state_dict": not an mmengine '
                         'checkpoint.')
    student = {
        key[len(STUDENT_PREFIX):]: value
        for key, value in state_dict.items() if key.startswith(STUDENT_PREFIX)
    }
    if not student:
        raise ValueError(
            f'{source} has no "{STUDENT_PREFIX}*" weights: it is not a '
            'distillation checkpoint (a plain checkpoint needs no conversion).')
    dropped = Counter(
        key.split('.', 1)[0] for key in state_dict
        if not key.startswith(STUDENT_PREFIX))
    print(f'kept {len(student)} student tensors; dropped ' +
          (', '.join(f'{n} {prefix}.*' for prefix, n in sorted(dropped.items()))
           or 'nothing'))
    meta = dict(checkpoint.get('meta') or {})
    meta['converted_from_kd'] = dict(
        source=osp.basename(source), dropped=dict(dropped))
    return dict(meta=meta, state_dict=student)


def output_path(args) -> str:
    """Where to write: ``--out-path`` (file or directory) or the default."""
    if args.inplace:
        if args.out_path:
            raise ValueError('--inplace and --out-path exclude each other.')
        return args.checkpoint
    name = osp.splitext(osp.basename(args.checkpoint))[0] + '_student.pth'
    out = args.out_path or osp.dirname(osp.abspath(args.checkpoint))
    if osp.isdir(out) or out.endswith(os.sep):
        out = osp.join(out, name)
    if osp.realpath(out) == osp.realpath(args.checkpoint):
        raise ValueError(f'{out} is the input checkpoint: pass --inplace to '
                         'replace it, or choose another --out-path.')
    return out


def save_atomic(obj: dict, path: str) -> None:
    """``torch.save`` to a temporary file in the target folder, then rename."""
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix='.tmp', dir=folder)
    try:
        with os.fdopen(fd, 'wb') as f:
            torch.save(obj, f)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600 files
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main():
    args = parse_args()
    out = output_path(args)
    checkpoint = torch.load(
        args.checkpoint, map_location='cpu', weights_only=True)
    save_atomic(convert(checkpoint, args.checkpoint), out)
    print(f'student checkpoint saved to {out}')


if __name__ == '__main__':
    main()
