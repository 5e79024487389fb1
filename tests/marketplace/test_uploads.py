import pytest

from common.errors import FileTooLarge
from marketplace.uploads import EncryptedTemporaryFileUploadHandler

PLAINTEXT = b"name,diagnosis\n" + b"Alice Example,diabetes\n" * 5000


def receive(handler, data: bytes, chunk: int = 4096):
    handler.new_file("file", "data.csv", "text/csv", len(data))
    for start in range(0, len(data), chunk):
        handler.receive_data_chunk(data[start : start + chunk], start)
    return handler.file_complete(len(data))


def test_upload_temp_file_holds_no_plaintext_and_reads_back_seekably():
    uploaded = receive(EncryptedTemporaryFileUploadHandler(), PLAINTEXT)
    disk = uploaded.file._fh
    disk.seek(0)
    on_disk = disk.read()
    assert len(on_disk) == len(PLAINTEXT)
    assert b"Alice Example" not in on_disk and b"diagnosis" not in on_disk
    uploaded.seek(0)
    assert uploaded.read() == PLAINTEXT
    uploaded.seek(12345)  # random access, as Parquet readers need
    assert uploaded.read(100) == PLAINTEXT[12345:12445]
    assert uploaded.size == len(PLAINTEXT)
    uploaded.close()


def test_upload_beyond_the_limit_stops_with_413(settings):
    settings.DATASET_MAX_UPLOAD_BYTES = 10_000
    with pytest.raises(FileTooLarge) as excinfo:
        receive(EncryptedTemporaryFileUploadHandler(), PLAINTEXT)
    assert excinfo.value.status == 413
    handler = EncryptedTemporaryFileUploadHandler()
    with pytest.raises(FileTooLarge):  # refused from Content-Length before any byte is read
        handler.handle_raw_input(None, {}, 50 * 1024 * 1024, b"boundary")
