"""Kombu's filesystem transport (the embedded mode's queue) with atomic message files.

Kombu creates a message file and then writes it; a worker polling the directory can
move and read the file in between, get an empty payload and die with "Unrecoverable
error: JSONDecodeError" (seen under load). Here each message is written to a hidden
partial file and renamed into place, so a worker only ever sees whole messages.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

# Celery's `broker_transport` setting: kombu resolves this path to the class below.
TRANSPORT = "services.filesystem_broker:Transport"


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        """Put `payload` onto `queue`: written in full under a name the reader skips
        (it takes only '<stamp>_<uuid>.<queue>.msg'), then renamed into place."""
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = os.path.join(self.data_folder_out, f".{name}.part")
        try:
            with open(partial, "wb") as handle:
                handle.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)  # atomic on one file system
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
