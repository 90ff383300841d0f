"""LFS transfers (§5.8-5.9): self-authorising upload URLs and multipart staging.

The client sends LFS PUTs, part PUTs and the multipart completion **without** Authorization, so the batch
endpoint hands out URLs carrying a signed *ticket*: an HMAC over (repo, oid, size, chunk size, expiry) with a
secret kept in the data dir (URLs stay valid across a restart). Holding the URL is the permission to upload
exactly that object to exactly that repo before the expiry.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .errors import HubError, bad_request
from .objectstore import CHUNK, LfsStore

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Ticket:
    """What an upload URL allows: one object, into one repo, until ``expires``."""

    repo_type: str
    repo_id: str
    oid: str
    size: int
    chunk_size: int  # 0 for a basic (single PUT) upload
    expires: int

    @property
    def part_count(self) -> int:
        """Number of parts: ``ceil(size / chunk_size)``, or 1 for a basic upload."""
        return -(-self.size // self.chunk_size) if self.chunk_size else 1

    def part_length(self, number: int) -> int:
        """Length in bytes of part ``number`` (1-based): ``chunk_size``, the last part the remainder."""
        return min(self.chunk_size, self.size - (number - 1) * self.chunk_size)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class UploadTickets:
    """Issue and check signed upload tickets (URL-safe, no ``/``)."""

    def __init__(self, secret_file: Path, ttl: float = 24 * 3600) -> None:
        self.ttl = ttl
        if not secret_file.exists():
            fd, tmp = tempfile.mkstemp(dir=secret_file.parent)
            with os.fdopen(fd, "wb") as f:
                f.write(os.urandom(32))
            os.replace(tmp, secret_file)  # mkstemp already created it 0600
        self._secret = secret_file.read_bytes()

    def _sign(self, payload: str) -> str:
        return hmac.new(self._secret, payload.encode(), hashlib.sha256).hexdigest()[:40]

    def issue(self, repo_type: str, repo_id: str, oid: str, size: int, chunk_size: int) -> str:
        """A signed ticket to upload object ``oid`` of ``size`` bytes to one repo, valid ``ttl`` seconds.

        ``chunk_size`` is 0 for a basic upload, else the size of every part but the last.
        """
        ticket = Ticket(repo_type, repo_id, oid, size, chunk_size, int(time.time() + self.ttl))
        payload = _b64(json.dumps(asdict(ticket), separators=(",", ":")).encode())
        return f"{payload}.{self._sign(payload)}"

    @staticmethod
    def peek(token: str) -> Ticket | None:
        """The ticket's claims without checking the signature (for request logging only)."""
        try:
            return Ticket(**json.loads(_unb64(token.partition(".")[0])))
        except (ValueError, TypeError):
            return None

    def verify(self, token: str, oid: str) -> Ticket:
        """The claims of ``token`` if it is validly signed, for object ``oid`` and unexpired; 403 otherwise."""
        payload, _, signature = token.partition(".")
        ticket = self.peek(token)
        if ticket is None or not hmac.compare_digest(signature, self._sign(payload)) or ticket.oid != oid:
            raise HubError(403, "Invalid upload URL")
        if ticket.expires < time.time():
            raise HubError(403, "Upload URL expired: request a new one from the LFS batch endpoint")
        return ticket


class MultipartUploads:
    """Parts of multipart uploads, staged under ``tmp/multipart/<ticket digest>/`` until completion."""

    def __init__(self, root: Path, lfs: LfsStore) -> None:
        self.root = root
        self.lfs = lfs

    def _dir(self, token: str) -> Path:
        return self.root / hashlib.sha256(token.encode()).hexdigest()[:32]

    def put_part(self, token: str, ticket: Ticket, number: int, body: Iterable[bytes]) -> str:
        """Store part ``number`` (1-based) and return its ETag (sha256 of the part, quoted, as S3 quotes)."""
        if not ticket.chunk_size or not 1 <= number <= ticket.part_count:
            raise bad_request(f"Invalid part number {number} for this upload")
        expected = ticket.part_length(number)
        directory = self._dir(token)
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".part-")
        try:
            digest, received = hashlib.sha256(), 0
            with os.fdopen(fd, "wb") as f:
                for chunk in body:
                    digest.update(chunk)
                    received += len(chunk)
                    f.write(chunk)
            if received != expected:
                raise bad_request(f"Part {number} must be {expected} bytes, received {received}")
            etag = f'"{digest.hexdigest()}"'
            # The ETag file says "part stored": it goes first and comes last, so a crash in between leaves the
            # part "not uploaded" (the client sends it again), never an ETag of other bytes.
            (directory / f"{number}.etag").unlink(missing_ok=True)
            os.replace(tmp, directory / str(number))
            (directory / f"{number}.etag").write_text(etag)
            return etag
        finally:
            Path(tmp).unlink(missing_ok=True)

    def complete(self, token: str, ticket: Ticket, payload: Any) -> None:
        """Assemble the parts listed in the completion payload, check sha256/size, and store the object."""
        directory = self._dir(token)
        if self.lfs.has(ticket.oid) and not directory.exists():
            return  # a retried completion whose first attempt succeeded
        parts = payload.get("parts") if isinstance(payload, dict) else None
        if not isinstance(parts, list):
            raise bad_request("Completion payload must have a 'parts' list")
        try:
            numbers = sorted(int(p["partNumber"]) for p in parts)
            etags = {int(p["partNumber"]): str(p["etag"]) for p in parts}
        except (KeyError, TypeError, ValueError):
            raise bad_request("Each part needs an integer 'partNumber' and an 'etag'") from None
        if numbers != list(range(1, ticket.part_count + 1)):
            raise bad_request(f"Completion must list parts 1..{ticket.part_count} exactly once")
        for n in numbers:
            stored = directory / f"{n}.etag"
            if not stored.exists():
                raise bad_request(f"Part {n} was not uploaded")
            if stored.read_text().strip('"') != etags[n].strip('"'):
                raise bad_request(f"ETag mismatch for part {n}")

        def assembled() -> Iterator[bytes]:
            for n in numbers:
                with (directory / str(n)).open("rb") as f:
                    while chunk := f.read(CHUNK):
                        yield chunk

        self.lfs.receive(assembled(), ticket.oid, ticket.size)
        shutil.rmtree(directory, ignore_errors=True)
