"""The scratch store the largest checks set arrays aside in: what goes in comes back, on disk
only past the size asked, and the files go with the block."""

from __future__ import annotations

from pathlib import Path

import numpy as np

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
