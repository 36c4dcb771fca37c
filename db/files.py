"""The file store: uploads by SHA-256 and heatmaps by assessment id, under one directory.
Each upload's working and display copies (core.working_image) are kept by the same hash,
under working/ and display/.

Paths stored in the database are relative to the store's root, so the directory
can move (or be mounted elsewhere in a container) without rewriting rows.
"""

from __future__ import annotations

from pathlib import Path

from core.atomic import write_bytes_atomic
from core.hashing import sha256_hex
from core.imageio import sniff_suffix
from core.working_image import upload_is_display_size


def derived_path(kind: str, sha256: str) -> str:
    """Where an upload's "working" or "display" copy is kept."""
    return f"{kind}/{sha256[:2]}/{sha256}.png"


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

    def put_working_copies(self, sha256: str, working, upload_path: str) -> tuple[str, str]:
        """Store an upload's working copy and display copy (a core.working_image.WorkingImage),
        each encoded only when not stored yet; returns their relative paths. A PNG upload
        already no larger than the display size is its own display copy."""
        paths = []
        for kind, encode in (("working", working.png), ("display", working.display_png)):
            if kind == "display" and upload_is_display_size(upload_path, working):
                paths.append(upload_path)
                continue
            relative = derived_path(kind, sha256)
            target = self.path(relative)
            if not target.exists():
                write_bytes_atomic(target, encode())
            paths.append(relative)
        return paths[0], paths[1]

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
