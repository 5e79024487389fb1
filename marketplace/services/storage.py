"""Dataset files in the "datasets" storage: private files encrypted at rest, public mock files.

Everything goes through Django's storage API, so S3 (django-storages) works by configuration."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from django.conf import settings
from django.core.files import File
from django.core.files.storage import storages

from common.crypto import StreamStats, decrypt_stream, encrypt_stream
from marketplace.uploads import too_large

PRIVATE_PREFIX = "private/"
MOCK_PREFIX = "mock/"
READ_CHUNK = 1024 * 1024


def dataset_storage():
    return storages["datasets"]


class _EncryptingFile(File):
    """A File whose chunks are the encrypted form of a plaintext source, produced lazily, so the
    storage backend pulls ciphertext chunk by chunk and nothing is held whole in memory."""

    def __init__(self, source: BinaryIO, *, max_bytes: int, stats: StreamStats) -> None:
        super().__init__(None, name="encrypted")
        self._stream = encrypt_stream(
            _read_chunks(source), max_bytes=max_bytes, stats=stats, on_too_large=_raise_too_large
        )
        self._buffer = bytearray()

    @property
    def size(self):  # unknown until the stream ends; backends must not rely on it
        return None

    def chunks(self, chunk_size=None) -> Iterator[bytes]:
        yield from self._stream

    def __iter__(self):
        return self.chunks()

    def read(self, size: int = -1) -> bytes:  # for backends that pull with read(), e.g. S3
        while size < 0 or len(self._buffer) < size:
            piece = next(self._stream, None)
            if piece is None:
                break
            self._buffer += piece
        if size < 0:
            size = len(self._buffer)
        out = bytes(self._buffer[:size])
        del self._buffer[:size]
        return out

    def seek(self, offset: int, whence: int = 0) -> int:
        if offset != 0 or whence not in (0, 1):
            raise OSError("An encrypting stream can only be read forwards.")
        return 0

    def tell(self) -> int:
        return 0

    def close(self) -> None:
        pass


def _raise_too_large(limit: int) -> None:
    raise too_large(limit)


def _read_chunks(source: BinaryIO) -> Iterator[bytes]:
    if hasattr(source, "seek"):
        source.seek(0)
    while True:
        piece = source.read(READ_CHUNK)
        if not piece:
            return
        yield piece


@dataclass(frozen=True)
class StoredFile:
    name: str
    size: int
    sha256: str


def encrypted_file_store(*, source: BinaryIO, max_bytes: int | None = None) -> StoredFile:
    """Stream ``source`` into the datasets storage, encrypted, hashing the plaintext on the way.

    Raises ``FileTooLarge`` past ``max_bytes`` (default: the upload limit). Leaves no partial
    file behind on any failure."""
    limit = settings.DATASET_MAX_UPLOAD_BYTES if max_bytes is None else max_bytes
    storage = dataset_storage()
    name = f"{PRIVATE_PREFIX}{uuid.uuid4().hex}.enc"
    stats = StreamStats()
    try:
        saved = storage.save(name, _EncryptingFile(source, max_bytes=limit, stats=stats))
    except BaseException:
        stored_file_delete(name)
        raise
    return StoredFile(name=saved, size=stats.size, sha256=stats.sha256)


def encrypted_file_chunks(name: str) -> Iterator[bytes]:
    """Plaintext chunks of a stored private file. For the trusted runner and validation only;
    no view may ever send these bytes."""
    with dataset_storage().open(name, "rb") as fh:
        yield from decrypt_stream(fh)


def public_file_store(*, source: BinaryIO, suffix: str) -> str:
    storage = dataset_storage()
    name = f"{MOCK_PREFIX}{uuid.uuid4().hex}{suffix}"
    try:
        return storage.save(name, File(source, name=name))
    except BaseException:
        stored_file_delete(name)
        raise


def stored_file_delete(name: str) -> None:
    if not name:
        return
    storage = dataset_storage()
    try:
        if storage.exists(name):
            storage.delete(name)
    except FileNotFoundError:
        pass
