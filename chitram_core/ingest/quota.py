"""The quota, before the body flows: an upload whose declared length (or one more image) would
pass its owner's quota is refused (``QUOTA_EXCEEDED``) before a byte is read. The exact size is
charged by the record, in the transaction that writes the image row
(:meth:`chitram_core.quotas.Quotas.charge`).
"""

from __future__ import annotations

from chitram_core.ingest.upload import Upload
from chitram_core.quotas import Quotas


class QuotaCheck:
    def __init__(self, quotas: Quotas) -> None:
        self.quotas = quotas

    async def run(self, upload: Upload) -> None:
        owner = upload.source.owner
        if owner is not None:
            await self.quotas.check_declared(owner.user_id, upload.source.declared_length)
