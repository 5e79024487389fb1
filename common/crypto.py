"""Streaming authenticated encryption for dataset files at rest (AES-256-GCM, chunked).

Format: header = MAGIC | key id (8) | salt (32) | chunk size (4, big-endian). Then chunks of
``chunk size`` plaintext bytes, each sealed with AES-GCM under a per-file key derived by HKDF
from the master key and the salt. The nonce is the chunk counter (11 bytes) and a final flag
(1 byte), and the header is the associated data, so chunks cannot be reordered, dropped,
truncated or moved to another file without the tag check failing. The last chunk (possibly
empty) carries the final flag.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

MAGIC = b"PPDXENC1"
TAG_BYTES = 16
HEADER_BYTES = len(MAGIC) + 8 + 32 + 4


class DecryptionError(Exception):
    """The ciphertext is corrupt, truncated, or was sealed under another key."""


def key_setting(name: str) -> bytes:
    """The 32-byte key held base64-encoded in setting ``name``, or a configuration error naming it."""
    try:
        key = base64.b64decode(getattr(settings, name), validate=True)
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(f"{name} must be base64.") from exc
    if len(key) != 32:
        raise ImproperlyConfigured(f"{name} must decode to exactly 32 bytes.")
    return key


def master_key() -> bytes:
    return key_setting("DATASET_ENCRYPTION_KEY")


def _key_id(key: bytes) -> bytes:
    return hashlib.sha256(b"ppdx-key-id" + key).digest()[:8]


def _file_key(key: bytes, salt: bytes) -> AESGCM:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"ppdx dataset file v1").derive(key)
    return AESGCM(derived)


def _nonce(counter: int, final: bool) -> bytes:
    return counter.to_bytes(11, "big") + (b"\x01" if final else b"\x00")


@dataclass
class StreamStats:
    size: int = 0
    sha256: str = ""


def encrypt_stream(
    chunks: Iterable[bytes],
    *,
    max_bytes: int | None = None,
    on_too_large=None,
    chunk_size: int | None = None,
    stats: StreamStats | None = None,
) -> Iterator[bytes]:
    """Yield the encrypted form of the plaintext ``chunks``, hashing the plaintext as it goes.

    ``stats`` receives the plaintext size and SHA-256 when the stream is exhausted. When more
    than ``max_bytes`` arrive, ``on_too_large(max_bytes)`` is called (it should raise)."""
    key = master_key()
    chunk_size = chunk_size or settings.DATASET_ENCRYPTION_CHUNK_BYTES
    salt = os.urandom(32)
    header = MAGIC + _key_id(key) + salt + chunk_size.to_bytes(4, "big")
    aead = _file_key(key, salt)
    digest = hashlib.sha256()
    size = 0
    counter = 0
    # A full chunk is held back until more data arrives: only then is it known not to be last.
    held: bytes | None = None
    partial = bytearray()
    yield header
    for piece in chunks:
        if not piece:
            continue
        digest.update(piece)
        size += len(piece)
        if max_bytes is not None and size > max_bytes:
            if on_too_large is not None:
                on_too_large(max_bytes)
            raise ValueError(f"stream larger than {max_bytes} bytes")
        if held is not None:
            yield aead.encrypt(_nonce(counter, False), held, header)
            counter += 1
            held = None
        if not partial and len(piece) == chunk_size:
            held = bytes(piece)
            continue
        partial += piece
        while len(partial) > chunk_size:
            yield aead.encrypt(_nonce(counter, False), bytes(partial[:chunk_size]), header)
            counter += 1
            del partial[:chunk_size]
        if len(partial) == chunk_size:
            held = bytes(partial)
            partial.clear()
    last = held if held is not None else bytes(partial)
    yield aead.encrypt(_nonce(counter, True), last, header)
    if stats is not None:
        stats.size = size
        stats.sha256 = digest.hexdigest()


def decrypt_stream(fh: BinaryIO) -> Iterator[bytes]:
    """Yield plaintext chunks of an encrypted file, verifying each chunk and the final flag."""
    header = fh.read(HEADER_BYTES)
    if len(header) != HEADER_BYTES or not header.startswith(MAGIC):
        raise DecryptionError("Not an encrypted dataset file.")
    key = master_key()
    if header[len(MAGIC) : len(MAGIC) + 8] != _key_id(key):
        raise DecryptionError("The file was encrypted under a different DATASET_ENCRYPTION_KEY.")
    salt = header[len(MAGIC) + 8 : len(MAGIC) + 40]
    chunk_size = int.from_bytes(header[-4:], "big")
    aead = _file_key(key, salt)
    sealed = chunk_size + TAG_BYTES
    counter = 0
    current = fh.read(sealed)
    while True:
        following = fh.read(sealed) if len(current) == sealed else b""
        final = not following
        try:
            yield aead.decrypt(_nonce(counter, final), current, header)
        except InvalidTag as exc:
            raise DecryptionError("Encrypted dataset file is corrupt or truncated.") from exc
        if final:
            return
        counter += 1
        current = following
