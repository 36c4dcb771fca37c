"""The file store: uploads by SHA-256 and heatmaps by assessment id, under one directory.

Paths stored in the database are relative to the store's root, so the directory
can move (or be mounted elsewhere in a container) without rewriting rows.
"""

from __future__ import annotations

from pathlib import Path

from core.atomic import write_bytes_atomic
from core.hashing import sha256_hex
from core.imageio import sniff_suffix


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
            write_bytes_atomic(target, data)
        return digest, relative

    def put_heatmap(self, name: str, png: bytes) -> str:
        relative = f"heatmaps/{name}.png"
        write_bytes_atomic(self.path(relative), png)
        return relative

    def read(self, relative: str) -> bytes:
        return self.path(relative).read_bytes()

    def exists(self, relative: str) -> bool:
        return self.path(relative).is_file()

    def delete(self, relative: str) -> None:
        self.path(relative).unlink(missing_ok=True)
