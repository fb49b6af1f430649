"""The scratch store the largest checks set arrays aside in: what goes in comes back, on disk
only past the size asked, and the files go with the block."""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pytest

from nnzoo.offload import Shelf


def _arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"a.weight": rng.standard_normal((3, 4)), "a.bias": np.arange(4.0),
            "n": np.array(7, dtype=np.int64)}


def test_small_sets_stay_in_memory_as_copies() -> None:
    arrays = _arrays()
    with Shelf(100.0, disk_above=1000.0) as shelf:
        kept = shelf.put(arrays.items())
        assert not shelf.on_disk
        arrays["a.bias"][0] = -1.0  # a copy: the caller's later writes do not reach it
        assert kept["a.bias"][0] == 0.0


def test_large_sets_go_to_disk_and_come_back_equal_then_go() -> None:
    arrays = _arrays()
    with Shelf(2000.0, disk_above=1000.0) as shelf:
        kept = shelf.put(iter(arrays.items()))  # a one-pass iterable, as the checks give it
        assert shelf.on_disk
        folder = Path(shelf._dir.name)  # type: ignore[union-attr]
        assert len(list(folder.iterdir())) == len(arrays)
        assert list(kept) == list(arrays) and len(kept) == 3
        for key, value in arrays.items():
            back = kept[key]
            assert back.dtype == value.dtype and back.shape == value.shape
            np.testing.assert_array_equal(back, value)
            back[...] = 0  # each read is the reader's own array
            np.testing.assert_array_equal(kept[key], value)
    assert not folder.exists()


def test_non_contiguous_arrays_are_stored_as_their_values() -> None:
    t = np.arange(12.0).reshape(3, 4).T  # a transposed view, as a layout change gives
    with Shelf(2000.0, disk_above=1000.0) as shelf:
        np.testing.assert_array_equal(shelf.put([("t", t)])["t"], t)


def test_strided_arrays_larger_than_a_chunk_are_written_block_by_block(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows copied a block at a time (CHUNK shrunk to two pages), the file padded to ALIGN."""
    import nnzoo.offload

    monkeypatch.setattr(nnzoo.offload, "CHUNK", 2 * nnzoo.offload.ALIGN)
    arrays = {"t": np.random.default_rng(1).standard_normal((700, 9)).T,  # rows of 5.6 KB
              "wide": np.arange(4500.0).reshape(3, 1500).T[::2],  # rows of 24 B, strided twice
              "empty": np.zeros((0, 3))}
    with Shelf(2000.0, disk_above=1000.0) as shelf:
        kept = shelf.put(arrays.items())
        if not shelf.direct:
            pytest.skip("this temporary directory's file system takes no O_DIRECT writes")
        sizes = sorted(p.stat().st_size for p in Path(shelf._dir.name).iterdir())  # type: ignore[union-attr]
        assert sizes == [0, 20480, 53248]  # 0, 18000 and 50400 bytes, padded to whole pages
        for key, value in arrays.items():
            assert kept[key].shape == value.shape
            np.testing.assert_array_equal(kept[key], value)


def test_without_direct_io_the_shelf_writes_npy_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """A file system that refuses O_DIRECT (EINVAL) gets buffered .npy files instead."""
    import nnzoo.offload

    def refuse(*args: object) -> None:
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(nnzoo.offload, "_write_direct", refuse)
    arrays = _arrays()
    with Shelf(2000.0, disk_above=1000.0) as shelf:
        kept = shelf.put(arrays.items())
        assert not shelf.direct
        assert all(p.suffix == ".npy" for p in Path(shelf._dir.name).iterdir())  # type: ignore[union-attr]
        for key, value in arrays.items():
            np.testing.assert_array_equal(kept[key], value)
