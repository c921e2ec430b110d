"""Uploads the studio accepts (scripts files), kept in memory up to their cap plus one byte.

Django's default handlers keep an upload in memory up to FILE_UPLOAD_MAX_MEMORY_SIZE and spool
the rest to a temporary file however large it is, so a 300 MB post filled the disk before the
form could say "too large". This handler keeps the first SCRIPT_FILE_MAX_BYTES + 1 bytes of
each file (enough for the form's size rule to refuse it) and lets the rest of the body stream
past in the parser's chunks: the other fields still arrive and memory stays bounded.
"""

from io import BytesIO

from django.core.files.uploadedfile import InMemoryUploadedFile
from django.core.files.uploadhandler import FileUploadHandler

from topics.scripts import SCRIPT_FILE_MAX_BYTES


class CappedMemoryUploadHandler(FileUploadHandler):
    """Each uploaded file in memory, truncated after `max_bytes` (its `size` is what was sent)."""

    max_bytes = SCRIPT_FILE_MAX_BYTES + 1

    def new_file(self, *args, **kwargs) -> None:
        super().new_file(*args, **kwargs)
        self.file = BytesIO()

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        room = self.max_bytes - self.file.tell()
        if room > 0:
            self.file.write(raw_data[:room])
        return None  # nothing for later handlers: the rest of an oversized file is dropped

    def file_complete(self, file_size: int) -> InMemoryUploadedFile:
        self.file.seek(0)
        return InMemoryUploadedFile(
            file=self.file,
            field_name=self.field_name,
            name=self.file_name,
            content_type=self.content_type,
            size=file_size,
            charset=self.charset,
            content_type_extra=self.content_type_extra,
        )
