from __future__ import annotations

import datetime as dt
import re

from ccm.ids import id_at, new_id, time_of_id


def test_ids_are_prefixed_crockford_ulids():
    assert re.fullmatch(r"msg_[0-9A-HJKMNP-TV-Z]{26}", new_id("msg"))


def test_ids_made_in_a_row_sort_in_creation_order_even_within_a_millisecond():
    ids = [new_id("prf") for _ in range(5000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_an_id_made_for_a_past_moment_sorts_and_reads_back_at_that_moment():
    earlier, later = dt.datetime(2026, 1, 2, 3, 4, 5, 678000, dt.UTC), dt.datetime(2026, 1, 2, 3, 4, 6, tzinfo=dt.UTC)
    ids = [id_at("msg", earlier) for _ in range(50)]
    assert len(set(ids)) == 50 and all(i < id_at("msg", later) for i in ids)
    assert {time_of_id(i) for i in ids} == {earlier}
