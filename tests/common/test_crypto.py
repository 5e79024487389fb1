import base64
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.crypto import HEADER_BYTES, DecryptionError, StreamStats, decrypt_stream, encrypt_stream

CHUNK = 64


def seal(data: bytes, pieces: int = 7) -> tuple[bytes, StreamStats]:
    stats = StreamStats()
    step = max(1, len(data) // pieces)
    parts = [data[i : i + step] for i in range(0, len(data), step)]
    return b"".join(encrypt_stream(parts, chunk_size=CHUNK, stats=stats)), stats


def open_(blob: bytes) -> bytes:
    return b"".join(decrypt_stream(io.BytesIO(blob)))


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=CHUNK * 6), st.integers(min_value=1, max_value=9))
def test_round_trip_any_length_and_chunking(data, pieces):
    blob, stats = seal(data, pieces)
    assert open_(blob) == data
    assert stats.size == len(data)
    assert data not in blob[HEADER_BYTES:] or len(data) < 8


def test_stats_report_plaintext_sha256():
    import hashlib

    data = b"x" * (CHUNK * 3)  # an exact multiple of the chunk size
    blob, stats = seal(data)
    assert stats.sha256 == hashlib.sha256(data).hexdigest()
    assert open_(blob) == data


@pytest.mark.parametrize(
    "tamper",
    [
        lambda b: b[:-1],  # truncated tag
        lambda b: b[: HEADER_BYTES + CHUNK + 16],  # whole trailing chunks dropped
        lambda b: b[:HEADER_BYTES] + bytes([b[HEADER_BYTES] ^ 1]) + b[HEADER_BYTES + 1 :],  # flipped bit
        lambda b: b[:20] + bytes([b[20] ^ 1]) + b[21:],  # header (salt) changed
    ],
    ids=["truncated", "dropped-chunks", "bit-flip", "header"],
)
def test_tampering_is_detected(tamper):
    blob, _ = seal(bytes(range(256)) * 2)
    with pytest.raises(DecryptionError):
        open_(tamper(blob))


def test_wrong_key_is_refused_with_a_clear_message(settings):
    blob, _ = seal(b"secret rows")
    settings.DATASET_ENCRYPTION_KEY = base64.b64encode(b"z" * 32).decode()
    with pytest.raises(DecryptionError, match="different DATASET_ENCRYPTION_KEY"):
        open_(blob)


def test_size_limit_stops_the_stream():
    class Stop(Exception):
        pass

    def too_large(limit):
        raise Stop(limit)

    with pytest.raises(Stop):
        list(encrypt_stream([b"a" * 100, b"b" * 100], max_bytes=150, on_too_large=too_large, chunk_size=CHUNK))
