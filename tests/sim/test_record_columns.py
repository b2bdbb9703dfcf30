"""Record columns keep every value, in order, across the blocks they convert at once."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hetsim.sim.records import Column, Rows


def test_a_column_keeps_every_value_in_order_across_blocks():
    floats, ints = Column("d"), Column("q")
    for i in range(10_000):
        floats.append(i / 3)
        ints.extend((i, -i))
    floats.append(math.nan)
    assert len(floats) == 10_001 and len(ints) == 20_000
    values = floats.numpy()
    assert values.dtype == np.float64 and np.array_equal(values[:-1], np.arange(10_000) / 3) and math.isnan(values[-1])
    assert ints.numpy().dtype == np.int64
    assert np.array_equal(ints.numpy(), np.stack([np.arange(10_000), -np.arange(10_000)], axis=1).ravel())


def test_rows_come_back_as_named_columns():
    rows = Rows((("n", "code"), ("start_s",)))
    for n in range(5000):
        rows.ints.extend((n, 7))
        rows.floats.extend((n * 0.5,))
    columns = rows.columns()
    assert len(rows) == 5000
    assert np.array_equal(columns["n"], np.arange(5000)) and set(columns["code"]) == {7}
    assert np.array_equal(columns["start_s"], np.arange(5000) * 0.5)


def test_a_column_of_another_type_is_refused_by_name():
    with pytest.raises(ValueError, match="expected typecode 'd' or 'q', got 'i'"):
        Column("i")
