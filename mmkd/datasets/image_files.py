"""Unreadable image files stop a run with the file's path, where the dataset lists it, and the fix.

Without this, an image that cannot be read ends the run in the DataLoader with a raw decoder error that names no
file (OpenCV's ``!buf.empty()`` for an empty file), or worse, is half decoded without a word (a truncated JPEG
decodes with its missing rows grey). [PROPOSAL]
"""
import os
import os.path as osp
from typing import Any, List, Optional, Tuple

import numpy as np

#: Image formats recognised by their first bytes (others are checked by decoding only).
_MAGIC = ((b'\xff\xd8\xff', 'JPEG'), (b'\x89PNG\r\n\x1a\n', 'PNG'), (b'BM', 'BMP'), (b'GIF87a', 'GIF'),
          (b'GIF89a', 'GIF'), (b'II*\x00', 'TIFF'), (b'MM\x00*', 'TIFF'))
#: Shown at most this many unreadable files in a pre-flight error.
_SHOWN = 5


class UnreadableImageError(OSError):
    """A dataset's image file is missing, empty, truncated or not an image."""


def _is_remote(path: str) -> bool:
    return '://' in str(path)


def image_file_problem(path: str, data: Optional[bytes] = None, decode: bool = False) -> Optional[str]:
    """What is wrong with the local image file ``path`` (None if nothing is found): missing, empty, an unknown
    format, or a JPEG / PNG whose end is missing (truncated: OpenCV would decode it with grey rows, or not at
    all). With ``decode`` the file is also decoded (OpenCV, as mmcv's ``LoadImageFromFile`` does by default);
    ``data`` are the file's bytes when already read. Remote paths (``s3://`` ...) are not checked."""
    if _is_remote(path):
        return None
    if data is None:
        try:
            with open(path, 'rb') as f:
                data = f.read()
        except FileNotFoundError:
            return 'it does not exist'
        except IsADirectoryError:
            return 'it is a folder, not a file'
        except OSError as err:
            return f'it cannot be opened ({err.strerror or err})'
    if not data:
        return 'it is empty (0 bytes)'
    kind = next((name for magic, name in _MAGIC if data.startswith(magic)), None)
    if data[:4] == b'RIFF' and data[8:12] == b'WEBP':
        kind, size = 'WEBP', 8 + int.from_bytes(data[4:8], 'little')
        if len(data) < size:
            return f'it is a truncated WEBP ({len(data)} bytes; its header says {size})'
    if kind == 'JPEG':
        # entropy-coded data never holds 0xFFD9 or 0xFFDA (0xFF is byte-stuffed), so a complete JPEG has its
        # end-of-image marker after its last start-of-scan marker
        if data.rfind(b'\xff\xd9') < max(data.rfind(b'\xff\xda'), 2):
            return f'it is a truncated JPEG ({len(data)} bytes, no end-of-image marker after its last scan)'
    elif kind == 'PNG':
        if data.rfind(b'IEND') < 8:
            return f'it is a truncated PNG ({len(data)} bytes, no IEND chunk)'
    elif kind == 'BMP' and len(data) >= 6 and len(data) < int.from_bytes(data[2:6], 'little'):
        return f'it is a truncated BMP ({len(data)} bytes; its header says {int.from_bytes(data[2:6], "little")})'
    if decode:
        import cv2
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if img is None or img.size == 0:
            start = data[:16]
            what = f'a {kind} that OpenCV cannot decode' if kind else \
                f'not an image OpenCV can decode (its first bytes: {start!r})'
            return f'it is {what}'
    return None


class CheckedImageFiles:
    """Mixin of a ``BaseDataset`` whose samples have an ``img_path`` read by the pipeline: unreadable image files
    stop the run with :class:`UnreadableImageError`, naming the file, where the dataset lists it
    (:meth:`image_source`) and the fix.

    * at build (``full_init``, after filtering), ``check_image_files=True``: every listed file must exist and not
      be empty (one ``os.stat`` per file; all bad files are counted, the first few named). Turn it off on a file
      system where a ``stat`` is slow (millions of files on a network share): the check at reading time stays.
    * whenever a sample is read (``prepare_data``, in the DataLoader's workers): the file's bytes are checked
      (present, not empty, JPEG/PNG/BMP/WEBP complete) before the pipeline reads it (a second read of a file the
      page cache holds); a pipeline error is diagnosed by decoding the file, and re-raised as an
      :class:`UnreadableImageError` when the file is to blame (else unchanged).

    Nothing is skipped silently: a run stops at the first unreadable file it meets, before the step that would
    read it trains, and checkpoints already written stay as they are. [PROPOSAL]
    """

    def __init__(self, *args, check_image_files: bool = True, **kwargs) -> None:
        self.check_image_files = check_image_files
        super().__init__(*args, **kwargs)

    # ------------------------------------------------------------------ what each dataset says
    def image_source(self, info: dict, idx: Optional[int] = None) -> str:
        """Where the dataset lists the sample ``info`` (e.g. its entry in the annotation file)."""
        return f'sample {info.get("sample_idx", idx)}'

    def image_fix(self) -> str:
        """How to repair an unreadable file of this dataset."""
        return ('Restore the file from the original data (download or extract it again), or remove its entry from '
                'the dataset\'s file list.')

    # ------------------------------------------------------------------ the checks
    def _unreadable(self, path: str, problem: str, info: dict, idx: Optional[int]) -> UnreadableImageError:
        return UnreadableImageError(
            f'{type(self).__name__}: cannot read image {path}: {problem}. It is {self.image_source(info, idx)}. '
            f'{self.image_fix()}')

    def filter_data(self) -> List[dict]:
        data_list = super().filter_data()
        if self.check_image_files:
            self._check_listed_files(data_list)
        return data_list

    def _check_listed_files(self, data_list: List[dict]) -> None:
        bad: List[Tuple[int, dict, str]] = []
        for idx, info in enumerate(data_list):
            path = info.get('img_path')
            if not path or _is_remote(path):
                continue
            try:
                st = os.stat(path)
            except FileNotFoundError:
                bad.append((idx, info, 'missing'))
                continue
            except OSError as err:
                bad.append((idx, info, f'cannot be read ({err.strerror or err})'))
                continue
            if not osp.isfile(path):
                bad.append((idx, info, 'not a file'))
            elif st.st_size == 0:
                bad.append((idx, info, 'empty (0 bytes)'))
        if not bad:
            return
        shown = '; '.join(f'{info["img_path"]} ({what}; {self.image_source(info, idx)})'
                          for idx, info, what in bad[:_SHOWN])
        more = f'; and {len(bad) - _SHOWN} more' if len(bad) > _SHOWN else ''
        raise UnreadableImageError(
            f'{type(self).__name__}: {len(bad)} of the {len(data_list)} image files it lists cannot be read: '
            f'{shown}{more}. {self.image_fix()} (This check runs when the dataset is built; '
            f'check_image_files=False turns it off, e.g. on a slow network file system.)')

    def prepare_data(self, idx: int) -> Any:
        info = self.get_data_info(idx)
        path = info.get('img_path')
        if not path or _is_remote(path):
            return self.pipeline(info)
        problem = image_file_problem(path)
        if problem:
            raise self._unreadable(path, problem, info, idx)
        try:
            return self.pipeline(info)
        except Exception as err:
            problem = image_file_problem(path, decode=True)
            if problem:
                raise self._unreadable(path, problem, info, idx) from err
            raise
