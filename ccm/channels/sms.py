"""SMS encoding and segments: what a carrier will bill and how a body is split.

A body that fits the GSM 03.38 alphabet is sent as GSM-7 (160 characters in one segment, 153 per
segment when split; the extension characters ``^{}\\[~]|€`` take two). Anything else is sent as
UCS-2 (70 UTF-16 units, 67 per segment when split): one emoji turns a 160-character message
into three segments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = frozenset("^{}\\[~]|€\f")


@dataclass(frozen=True)
class SmsSize:
    encoding: str  # "GSM-7" | "UCS-2"
    units: int
    segments: int


def sms_size(body: str) -> SmsSize:
    if all(char in _GSM_BASIC or char in _GSM_EXTENDED for char in body):
        units = sum(2 if char in _GSM_EXTENDED else 1 for char in body)
        return SmsSize("GSM-7", units, 1 if units <= 160 else math.ceil(units / 153))
    units = len(body.encode("utf-16-le")) // 2
    return SmsSize("UCS-2", units, 1 if units <= 70 else math.ceil(units / 67))
