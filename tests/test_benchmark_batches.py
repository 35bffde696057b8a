"""benchmarks/throughput.py's padded_batches: the batches both speed scripts time."""

import importlib.util
import os

import numpy as np

_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks", "throughput.py")
_spec = importlib.util.spec_from_file_location("benchmark_throughput", _PATH)
throughput = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(throughput)


def test_padded_batches_sorts_pads_and_masks():
    rows = [[0, 5, 2], [0, 5, 6, 7, 8, 2], [0, 2], [0, 9, 9, 2]]
    order, batches = throughput.padded_batches(rows, batch_size=3, pad_to=4, padding_id=1)
    assert list(order) == [1, 3, 0, 2]
    assert [b["input_word_ids"].shape for b in batches] == [(3, 8), (1, 4)]
    first = batches[0]
    assert first["input_word_ids"].dtype == np.int32
    np.testing.assert_array_equal(first["input_word_ids"][1], [0, 9, 9, 2, 1, 1, 1, 1])
    np.testing.assert_array_equal(first["input_mask"].sum(1), [6, 4, 3])
    np.testing.assert_array_equal(batches[1]["input_word_ids"][0], [0, 2, 1, 1])
    assert not any(b["input_type_ids"].any() for b in batches)
    # Every row appears once, in `order`'s place, unpadded.
    flat = [b["input_word_ids"][i][b["input_mask"][i] == 1].tolist() for b in batches for i in range(len(b["input_mask"]))]
    assert flat == [rows[j] for j in order]


def test_padded_batches_without_rounding_pads_to_longest_row():
    _, batches = throughput.padded_batches([[3, 4, 5], [3]], batch_size=8)
    np.testing.assert_array_equal(batches[0]["input_word_ids"], [[3, 4, 5], [3, 0, 0]])
