"""kafka-python checks every record batch's CRC32C; its pure-Python function was 12% of a
worker's profile, so the `crc32c` package (a dependency) must be the one it found."""
from __future__ import annotations

import crc32c
from kafka.record import util


def test_kafka_python_uses_the_c_crc32c():
    assert util.calc_crc32c.__defaults__ == (crc32c.crc32c,)
    assert util.calc_crc32c(memoryview(b"123456789")) == 0xE3069283  # the CRC-32C check value
