from __future__ import annotations

import re

from ccm.ids import new_id


def test_ids_are_prefixed_crockford_ulids():
    assert re.fullmatch(r"msg_[0-9A-HJKMNP-TV-Z]{26}", new_id("msg"))


def test_ids_made_in_a_row_sort_in_creation_order_even_within_a_millisecond():
    ids = [new_id("prf") for _ in range(5000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
