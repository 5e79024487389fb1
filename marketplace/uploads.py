"""Upload handling that keeps plaintext off disk and stops at the size limit.

Django normally spools large uploads to a plaintext temporary file. This handler encrypts each
chunk with AES-CTR under a random key that lives only in memory for the request, so the
temporary file is useless to anyone who finds it, and it is removed when the request ends. The
resulting ``UploadedFile`` decrypts on read and is seekable (Parquet readers need that).

A CSV's header line is checked as it arrives (``csv_header_check``: UTF-8, its length, its
number of columns), so a file with 100,000 columns or no line break is refused after its first
chunk, before the rest is read, stored or parsed."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from typing import IO

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler

from common.errors import FileTooLarge

# Multipart framing and the other form fields ride along with the file.
MULTIPART_OVERHEAD_BYTES = 1024 * 1024


def too_large(limit: int) -> FileTooLarge:
    return FileTooLarge(
        f"The file is larger than the limit of {limit:,} bytes ({limit / 1024**2:,.0f} MiB).",
        extra={"limit_bytes": limit},
    )


class _CtrTempFile:
    """A temporary file whose bytes on disk are AES-CTR ciphertext under an in-memory key."""

    def __init__(self) -> None:
        self._fh = tempfile.TemporaryFile(dir=getattr(settings, "FILE_UPLOAD_TEMP_DIR", None))
        self._key = os.urandom(32)
        self._prefix = os.urandom(8)
        self._encryptor = self._cipher(0).encryptor()
        self.closed = False

    def _cipher(self, block: int) -> Cipher:
        return Cipher(algorithms.AES(self._key), modes.CTR(self._prefix + block.to_bytes(8, "big")))

    # writing happens once, sequentially, while the request is parsed
    def append(self, data: bytes) -> None:
        self._fh.write(self._encryptor.update(data))

    def finish(self) -> None:
        self._fh.flush()
        self._fh.seek(0)

    # reading: random access, so the stream cipher is positioned at the offset
    def read(self, size: int = -1) -> bytes:
        offset = self._fh.tell()
        data = self._fh.read(size)
        if not data:
            return b""
        decryptor = self._cipher(offset // 16).decryptor()
        skip = offset % 16
        if skip:
            decryptor.update(b"\0" * skip)
        return decryptor.update(data)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True
        self._fh.close()

    def __iter__(self) -> Iterator[bytes]:
        return iter(lambda: self.read(64 * 1024), b"")


class EncryptedTemporaryUploadedFile(UploadedFile):
    def __init__(
        self, name: str, content_type: str, charset: str | None, content_type_extra: dict[str, bytes] | None = None
    ) -> None:
        self._encrypted = _CtrTempFile()
        # File takes any file-like object (it reads, seeks and closes it); the stubs ask for an IO.
        super().__init__(self._encrypted, name, content_type, 0, charset, content_type_extra)  # type: ignore[arg-type]

    def append(self, data: bytes) -> None:
        self._encrypted.append(data)
        self.size = (self.size or 0) + len(data)

    def finish(self) -> None:
        """Writing is over: rewind for reading."""
        self._encrypted.finish()

    def close(self) -> None:
        try:
            self._encrypted.close()
        except FileNotFoundError:
            pass


class EncryptedTemporaryFileUploadHandler(FileUploadHandler):
    """Stream every uploaded file into an encrypted temporary file; refuse oversize uploads."""

    chunk_size = 1024 * 1024
    file: EncryptedTemporaryUploadedFile
    # The start of a CSV, kept until its header line is complete and checked; None once checked.
    _head: bytearray | None

    def handle_raw_input(
        self,
        input_data: IO[bytes],
        META: dict[str, str],
        content_length: int,
        boundary: str,
        encoding: str | None = None,
    ) -> None:
        limit = settings.DATASET_MAX_UPLOAD_BYTES
        if content_length and content_length > limit + MULTIPART_OVERHEAD_BYTES:
            raise too_large(limit)
        return None

    def new_file(
        self,
        field_name: str,
        file_name: str,
        content_type: str,
        content_length: int | None,
        charset: str | None = None,
        content_type_extra: dict[str, bytes] | None = None,
    ) -> None:
        super().new_file(field_name, file_name, content_type, content_length, charset, content_type_extra)
        self.file = EncryptedTemporaryUploadedFile(file_name, content_type, charset, content_type_extra)
        self._head = bytearray() if file_name.lower().endswith(".csv") else None

    def _check_head(self, head: bytearray, data: bytes, *, complete: bool) -> None:
        from marketplace.services.schema import csv_header_check

        head += data[: settings.DATASET_MAX_HEADER_BYTES + 8 - len(head)]
        try:
            done = csv_header_check(bytes(head), complete=complete) is not None
        except BaseException:
            self.file.close()
            raise
        if done or complete:
            self._head = None

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        limit = settings.DATASET_MAX_UPLOAD_BYTES
        if start + len(raw_data) > limit:
            self.file.close()
            raise too_large(limit)
        if self._head is not None:
            self._check_head(self._head, raw_data, complete=False)
        self.file.append(raw_data)
        return None

    def file_complete(self, file_size: int) -> EncryptedTemporaryUploadedFile:
        if self._head is not None and file_size:
            self._check_head(self._head, b"", complete=True)
        self.file.finish()
        self.file.size = file_size
        return self.file

    def upload_interrupted(self) -> None:
        if hasattr(self, "file"):
            self.file.close()
