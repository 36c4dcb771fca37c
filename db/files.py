"""The file store: uploads by SHA-256 and heatmaps by assessment id, under one directory.

Paths stored in the database are relative to the store's root, so the directory
can move (or be mounted elsewhere in a container) without rewriting rows.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sniff_suffix(data: bytes) -> str:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return ".png"
    if data.startswith(b"\xff\xd8"):
        return ".jpg"
    if len(data) > 132 and data[128:132] == b"DICM":
        return ".dcm"
    return ".bin"


class FileStore:
    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, relative: str) -> Path:
        path = (self.root / relative).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError(f"{relative!r} is outside the file store")
        return path

    def put_upload(self, data: bytes) -> tuple[str, str]:
        """Store an upload under its content hash; returns (sha256, relative path)."""
        digest = sha256_hex(data)
        relative = f"uploads/{digest[:2]}/{digest}{sniff_suffix(data)}"
        target = self.path(relative)
        if not target.exists():
            self._write_atomic(target, data)
        return digest, relative

    def put_heatmap(self, assessment_id: str, png: bytes) -> str:
        relative = f"heatmaps/{assessment_id}.png"
        self._write_atomic(self.path(relative), png)
        return relative

    def read(self, relative: str) -> bytes:
        return self.path(relative).read_bytes()

    def exists(self, relative: str) -> bool:
        return self.path(relative).is_file()

    @staticmethod
    def _write_atomic(target: Path, data: bytes) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
