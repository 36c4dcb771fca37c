"""The file store: uploads by SHA-256 and heatmaps by assessment id. Each upload's working
and display copies (core.working_image) are kept by the same hash, under working/ and
display/; a training job's evaluation report under training/<job id>/report/.

Two backends, chosen by one setting (open_file_store):
- LocalFileStore, a folder (BONEAGE_FILES_DIR): the embedded default, and for one machine
  or a shared volume;
- S3FileStore, an S3-compatible bucket (BONEAGE_FILES_URL=s3://bucket/prefix; MinIO or
  another server with BONEAGE_S3_ENDPOINT_URL; credentials as boto3 finds them, e.g.
  AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY): web servers and workers on different
  machines, sharing no disk.

Paths stored in the database are relative to the store's root (a key under the bucket's
prefix), so the store can move without rewriting rows.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from abc import ABC, abstractmethod
from functools import lru_cache
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from core.atomic import write_bytes_atomic
from core.hashing import sha256_hex
from core.imageio import sniff_suffix
from core.working_image import upload_is_display_size


class FileStoreUnavailable(Exception):
    """The store cannot be reached or refused for a while (an S3 server down, throttling,
    a 5xx): nothing is wrong with the file; try again later."""


def derived_path(kind: str, sha256: str) -> str:
    """Where an upload's "working" or "display" copy is kept."""
    return f"{kind}/{sha256[:2]}/{sha256}.png"


def checked_relative(relative: str) -> str:
    """A store path, refused when it could leave the store (absolute, or with "..")."""
    parts = PurePosixPath(relative).parts
    if not relative or relative.startswith("/") or ".." in parts or "\\" in relative:
        raise ValueError(f"{relative!r} is outside the file store")
    return str(PurePosixPath(*parts))


class FileStore(ABC):
    """What is stored where (the layout), over four primitives a backend provides."""

    @abstractmethod
    def write(self, relative: str, data: bytes) -> None:
        """Store `data` at `relative`, whole or not at all."""

    @abstractmethod
    def read(self, relative: str) -> bytes:
        """The stored bytes; FileNotFoundError when there are none."""

    @abstractmethod
    def exists(self, relative: str) -> bool: ...

    @abstractmethod
    def delete(self, relative: str) -> None:
        """Remove the file; nothing happens when it is not there."""

    def put_upload(self, data: bytes) -> tuple[str, str]:
        """Store an upload under its content hash; returns (sha256, relative path)."""
        digest = sha256_hex(data)
        relative = f"uploads/{digest[:2]}/{digest}{sniff_suffix(data)}"
        if not self.exists(relative):
            self.write(relative, data)
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
            if not self.exists(relative):
                self.write(relative, encode())
            paths.append(relative)
        return paths[0], paths[1]

    def put_heatmap(self, name: str, png: bytes) -> str:
        relative = f"heatmaps/{name}.png"
        self.write(relative, png)
        return relative

    def publish_dir(self, local_dir: Path, relative: str) -> None:
        """Make the files of a local folder (a training job's report, written on the
        worker's disk) readable from the store under `relative`."""
        for path in sorted(Path(local_dir).rglob("*")):
            if path.is_file():
                self.write(f"{relative}/{path.relative_to(local_dir).as_posix()}", path.read_bytes())


class LocalFileStore(FileStore):
    """A folder; each file written atomically (core.atomic)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, relative: str) -> Path:
        path = (self.root / checked_relative(relative)).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError(f"{relative!r} is outside the file store")
        return path

    def write(self, relative: str, data: bytes) -> None:
        write_bytes_atomic(self.path(relative), data)

    def read(self, relative: str) -> bytes:
        return self.path(relative).read_bytes()

    def exists(self, relative: str) -> bool:
        return self.path(relative).is_file()

    def delete(self, relative: str) -> None:
        self.path(relative).unlink(missing_ok=True)

    def publish_dir(self, local_dir: Path, relative: str) -> None:
        target = self.path(relative)
        if Path(local_dir).resolve() == target:
            return  # written in place already (the training scratch is inside the store)
        target.mkdir(parents=True, exist_ok=True)
        shutil.copytree(local_dir, target, dirs_exist_ok=True)


class S3FileStore(FileStore):
    """An S3-compatible bucket, through boto3: one object per file (a PUT is atomic).
    A server that cannot be reached, or answers 5xx / throttles after boto3's own retries,
    raises FileStoreUnavailable."""

    def __init__(self, url: str, endpoint_url: str | None = None, client=None):
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"BONEAGE_FILES_URL must look like s3://bucket/prefix, got {url!r}")
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        if client is None:
            import boto3
            from botocore.config import Config

            # Short connect timeout and a few retries: a web request waits seconds, not minutes.
            config = Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 3, "mode": "standard"})
            client = boto3.client("s3", endpoint_url=endpoint_url or None, config=config)
        self.client = client

    def key(self, relative: str) -> str:
        relative = checked_relative(relative)
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def write(self, relative: str, data: bytes) -> None:
        with self._reachable():
            self.client.put_object(Bucket=self.bucket, Key=self.key(relative), Body=data)

    def read(self, relative: str) -> bytes:
        with self._reachable():
            try:
                return self.client.get_object(Bucket=self.bucket, Key=self.key(relative))["Body"].read()
            except self.client.exceptions.NoSuchKey:
                raise FileNotFoundError(f"{relative} is not in s3://{self.bucket}/{self.prefix}") from None

    def exists(self, relative: str) -> bool:
        from botocore.exceptions import ClientError

        with self._reachable():
            try:
                self.client.head_object(Bucket=self.bucket, Key=self.key(relative))
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                    return False
                raise
        return True

    def delete(self, relative: str) -> None:
        with self._reachable():
            self.client.delete_object(Bucket=self.bucket, Key=self.key(relative))

    @contextlib.contextmanager
    def _reachable(self):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            if status >= 500 or exc.response.get("Error", {}).get("Code") in ("SlowDown", "Throttling"):
                raise FileStoreUnavailable(f"the file store s3://{self.bucket} answered {status}: {exc}") from exc
            raise
        except BotoCoreError as exc:  # connection refused or timed out, DNS, a closed connection
            raise FileStoreUnavailable(f"the file store s3://{self.bucket} cannot be reached: {exc}") from exc


def open_file_store(settings) -> FileStore:
    """The store the settings name: the bucket of BONEAGE_FILES_URL, else the folder
    BONEAGE_FILES_DIR. One per process and configuration (a boto3 client is built once)."""
    if settings.files_url:
        return _s3_store(settings.files_url, settings.s3_endpoint_url)
    return LocalFileStore(settings.files_dir)


@lru_cache(maxsize=4)
def _s3_store(url: str, endpoint_url: str | None) -> S3FileStore:
    return S3FileStore(url, endpoint_url)


# A boto3 client must not cross a fork (gunicorn's and Celery's prefork children).
os.register_at_fork(after_in_child=_s3_store.cache_clear)
