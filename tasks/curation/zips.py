"""A ZIP of archived originals, streamed while it is written.

zipfile writes into a sink that the response's generator empties after every block
read from storage, so memory stays one block (plus zipfile's own small state) however
many files go in: files are STORED (images and videos are compressed already), and on an
unseekable sink zipfile writes each file's sizes after it, in a data descriptor.
"""

import os
import zipfile

from django.core.files.storage import default_storage

BLOCK = 256 * 1024


class Sink:
    """A write-only file for zipfile whose bytes the generator takes away."""

    def __init__(self):
        self.parts = []

    def write(self, data):
        self.parts.append(bytes(data))
        return len(data)

    def flush(self):
        pass

    def take(self):
        data = b"".join(self.parts)
        self.parts.clear()
        return data


def stream(entries):
    """Yield the bytes of a ZIP of `entries`, (name in the ZIP, storage name) pairs; a
    file missing from storage is left out."""
    sink = Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED) as archive:
        for arcname, name in entries:
            try:
                source = default_storage.open(name, "rb")
            except OSError:
                continue
            with source, archive.open(arcname, "w", force_zip64=True) as target:
                while block := source.read(BLOCK):
                    target.write(block)
                    yield sink.take()
            yield sink.take()
    yield sink.take()


def entries_for(tasks, copies):
    """(name in the ZIP, storage name) of these tasks' originals and of their archived
    media copies ({task pk: [TaskMedia]}), each name unique in the ZIP."""
    seen = set()
    for task in tasks:
        files = [(task.task_id, task.image_file)] if task.image_file else []
        files += [
            (f"{task.task_id}-{copy.position + 1}", copy.file) for copy in copies.get(task.pk, [])
        ]
        for stem, name in files:
            arcname = stem + os.path.splitext(name)[1]
            n = 1
            while arcname in seen:  # one id in two sources
                n += 1
                arcname = f"{stem}~{n}{os.path.splitext(name)[1]}"
            seen.add(arcname)
            yield arcname, name
