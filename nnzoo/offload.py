"""Arrays set aside by key -- in memory, or past a size in files written around the page cache --
so that a check on the largest models holds one framework's weights and gradients at a time.

ViT-H/14's float64 weights are 5 GB a copy: a gradient check that kept both builds, both sets of
gradients and each build's initial weights in memory at once would need about eight copies. Set
aside on disk, what is not being computed on costs no memory.

The files are written and read with O_DIRECT where the file system allows it. A buffered write
puts every byte into fresh page-cache pages first, and fresh pages are what is slow on a VM whose
balloon hands freed memory back to the host (measured on the 2-core AMD EPYC test machine: 2 GB
in 7.8 s buffered, 1.5 s direct; rewriting pages already cached, 0.25 s). Writing ViT-L/16's
three shelved copies that way was about 40% of its float64 gradient check's CPU samples; direct,
the check went from 108 to 65 s on Keras/TensorFlow, 110 to 94 s on Keras/JAX and 94 to 70 s on
Keras/PyTorch (one run each, 2026-12-05). Where O_DIRECT is refused, plain .npy files.
"""

from __future__ import annotations

import errno
import itertools
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np

#: One copy of the weights above this many bytes goes to disk; below, it stays in memory (a
#: file per array costs more than the copy). ViT-L's float64 weights are 2.4 GB.
DISK_ABOVE = 2**30
#: O_DIRECT's alignment of buffer address, file offset and length (a page: what every Linux
#: file system that supports it accepts), and the size of the aligned buffer writes go through.
ALIGN = 4096
CHUNK = 1 << 24


@dataclass(frozen=True)
class _Stored:
    path: Path
    dtype: np.dtype
    shape: tuple[int, ...]
    direct: bool  # raw bytes written with O_DIRECT (padded to ALIGN), else an .npy file


class Shelf:
    """A scratch store for named arrays. `put` takes (key, array) pairs one at a time, so the
    caller never holds a whole copy; what it returns reads back lazily. A context manager: the
    files go when the block ends."""

    def __init__(self, nbytes: float, *, disk_above: float | None = None) -> None:
        above = DISK_ABOVE if disk_above is None else disk_above
        self._dir = tempfile.TemporaryDirectory(prefix="nnzoo-shelf-") if nbytes > above else None
        self._names = itertools.count()
        self._bounce: np.ndarray | None = None  # page-aligned: the direct writes' buffer
        self.direct = self._dir is not None and hasattr(os, "O_DIRECT")

    @property
    def on_disk(self) -> bool:
        return self._dir is not None

    def put(self, items: Iterable[tuple[str, np.ndarray]]) -> Mapping[str, np.ndarray]:
        """A copy of each array: in memory, or on disk and read back whole into a fresh array on
        each access (a reader going key by key holds one array at a time; reading beats
        memory-mapping here: measured 0.2 s against 4.1 s for 1.2 GB in the page cache)."""
        if self._dir is None:
            return {key: np.array(value, copy=True) for key, value in items}
        stored = {}
        for key, value in items:
            stored[key] = self._save(Path(self._dir.name) / str(next(self._names)),
                                     np.asarray(value))
        return _OnDisk(stored)

    def _save(self, path: Path, array: np.ndarray) -> _Stored:
        if self.direct:
            try:
                if self._bounce is None:
                    self._bounce = _aligned(CHUNK)
                _write_direct(path, array, self._bounce)
                return _Stored(path, array.dtype, array.shape, True)
            except OSError as exc:  # a file system without O_DIRECT (tmpfs before Linux 6.6)
                if exc.errno != errno.EINVAL:
                    raise
                path.unlink(missing_ok=True)
                self.direct = False
        np.save(path.with_suffix(".npy"), array)  # not ascontiguousarray: it makes 0-d 1-d
        return _Stored(path.with_suffix(".npy"), array.dtype, array.shape, False)

    def close(self) -> None:
        self._bounce = None
        if self._dir is not None:
            self._dir.cleanup()

    def __enter__(self) -> Shelf:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()


def _padded(nbytes: int) -> int:
    return -(-nbytes // ALIGN) * ALIGN


def _blocks(array: np.ndarray) -> Iterator[np.ndarray]:
    """The array's bytes in C order, as contiguous uint8 pieces of about CHUNK bytes: a strided
    view (a transposed gradient) is copied a block of rows at a time, not whole."""
    if array.ndim == 0 or array.flags.c_contiguous:
        flat = array.reshape(-1).view(np.uint8)  # a view: already in C order
        yield from (flat[s:s + CHUNK] for s in range(0, flat.size, CHUNK))
        return
    rows = max(1, CHUNK // max(array[0].nbytes, 1)) if len(array) else 1
    for start in range(0, len(array), rows):
        yield np.ascontiguousarray(array[start:start + rows]).reshape(-1).view(np.uint8)


def _aligned(nbytes: int) -> np.ndarray:
    """A fresh uint8 buffer whose address is a multiple of ALIGN."""
    raw = np.empty(nbytes + ALIGN, np.uint8)
    offset = -raw.ctypes.data % ALIGN
    return raw[offset:offset + nbytes]


def _write_direct(path: Path, array: np.ndarray, bounce: np.ndarray) -> None:
    """The array's bytes streamed through the page-aligned `bounce` buffer, zero-padded to ALIGN
    at the end (O_DIRECT writes whole blocks at aligned offsets)."""
    filled, offset = 0, 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_DIRECT, 0o600)

    def flush(length: int) -> None:
        done = 0
        while done < length:
            done += os.pwrite(fd, memoryview(bounce[done:length]), offset + done)

    try:
        for block in _blocks(array):
            while block.size:
                n = min(CHUNK - filled, block.size)
                bounce[filled:filled + n] = block[:n]
                filled, block = filled + n, block[n:]
                if filled == CHUNK:
                    flush(CHUNK)
                    offset, filled = offset + CHUNK, 0
        if filled:
            bounce[filled:_padded(filled)] = 0
            flush(_padded(filled))
    finally:
        os.close(fd)


def _read_direct(stored: _Stored) -> np.ndarray:
    """A fresh array, read straight into its own (aligned) memory."""
    nbytes = int(np.prod(stored.shape, dtype=np.int64)) * stored.dtype.itemsize
    buffer = _aligned(_padded(nbytes))
    target = memoryview(buffer)
    fd = os.open(stored.path, os.O_RDONLY | os.O_DIRECT)
    try:
        done = 0
        while done < len(target):
            got = os.preadv(fd, [target[done:]], done)
            if got == 0:
                raise OSError(errno.EIO, f"{stored.path}: ended after {done} bytes")
            done += got
    finally:
        os.close(fd)
    return buffer[:nbytes].view(stored.dtype).reshape(stored.shape)


class _OnDisk(Mapping[str, np.ndarray]):
    """Arrays saved by `Shelf.put`, each read afresh on access."""

    def __init__(self, stored: dict[str, _Stored]) -> None:
        self._stored = stored

    def __getitem__(self, key: str) -> np.ndarray:
        stored = self._stored[key]
        return _read_direct(stored) if stored.direct else np.load(stored.path)

    def __iter__(self) -> Iterator[str]:
        return iter(self._stored)

    def __len__(self) -> int:
        return len(self._stored)
