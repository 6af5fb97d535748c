"""Key material of one deployment, read from the data directory (see :mod:`server.config`).

The participant metadata file is the trust list: auth tokens and manifests are verified
against the ``authtokenPublicKeys`` / ``mtbPublicKeys`` it lists, for this participant and
for any other participant an operator adds. It is re-read when its modification time
changes, and served with a strong ETag (SHA-256 of the exact bytes served).
"""
from __future__ import annotations

import json
import os
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from mtb import keys
from mtb import b64url_decode, b64url_encode

from . import config as cfg
from .etags import strong_etag

KDK_BYTES = 32


@dataclass
class Metadata:
    document: list[dict[str, Any]]
    body: bytes  # exactly what GET /participantMetadata serves
    etag: str
    keystore: keys.KeyStore
    mtime_ns: int = 0


def _load_metadata(path: Path) -> Metadata:
    stat = path.stat()
    document = json.loads(path.read_text(encoding="utf-8"))
    keystore = keys.KeyStore()
    keystore.add_metadata(document)  # refuses a document of the wrong shape
    body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    etag = strong_etag(body)
    return Metadata(document, body, etag, keystore, stat.st_mtime_ns)


@dataclass
class KeyRing:
    data_dir: Path
    pid: int
    issuer_kid: str
    issuer_key: ec.EllipticCurvePrivateKey
    auth_kid: str
    auth_key: ec.EllipticCurvePrivateKey
    kdks: list[tuple[str, bytes]]
    _metadata: Metadata = field(repr=False, default=None)  # type: ignore[assignment]
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def load(cls, data_dir: str | Path, config: cfg.ServerConfig) -> "KeyRing":
        data_dir = Path(data_dir)
        issuer = keys.load_private_key((data_dir / cfg.ISSUER_KEY_FILE).read_bytes())
        auth = keys.load_private_key((data_dir / cfg.AUTH_KEY_FILE).read_bytes())
        kdks = [(str(item["kid"]), b64url_decode(item["key"]))
                for item in json.loads((data_dir / cfg.KDK_FILE).read_text(encoding="utf-8"))]
        if not kdks:
            raise keys.KeyMaterialError("kdk.json holds no KDK")
        ring = cls(data_dir, config.pid, config.issuer_kid, issuer, config.authtoken_kid, auth, kdks)
        ring._metadata = _load_metadata(data_dir / cfg.METADATA_FILE)
        return ring

    @property
    def metadata(self) -> Metadata:
        """The current participant metadata, re-read if the file changed (one stat a call)."""
        path = self.data_dir / cfg.METADATA_FILE
        try:
            mtime = path.stat().st_mtime_ns
        except OSError:
            return self._metadata
        if mtime != self._metadata.mtime_ns:
            with self._lock:
                try:
                    self._metadata = _load_metadata(path)
                except (OSError, ValueError, keys.KeyMaterialError):
                    pass  # keep serving the last good document
        return self._metadata

    @property
    def current_kdk(self) -> tuple[str, bytes]:
        return self.kdks[-1]

    def auth_public_key(self, pid: str, kid: str) -> ec.EllipticCurvePublicKey | None:
        return self.metadata.keystore.authtoken_keys.get((str(pid), str(kid)))

    def issuer_public_key(self, pid: str, kid: str) -> ec.EllipticCurvePublicKey | None:
        return self.metadata.keystore.issuer_key(str(pid), str(kid))

    def known_participant(self, pid: str) -> bool:
        return any(str(p.get("pid")) == str(pid) for p in self.metadata.document)


def create_key_material(data_dir: Path, config: cfg.ServerConfig) -> None:
    """Write fresh issuer and auth-token keys (0600), a KDK (0600) and participant metadata."""
    issuer = keys.generate_es256_key()
    auth = keys.generate_es256_key()
    cfg.write_file(data_dir / cfg.ISSUER_KEY_FILE, keys.private_key_pem(issuer), mode=0o600)
    cfg.write_file(data_dir / cfg.AUTH_KEY_FILE, keys.private_key_pem(auth), mode=0o600)
    kdk = [{"kid": "kdk-1", "key": b64url_encode(secrets.token_bytes(KDK_BYTES))}]
    cfg.write_file(data_dir / cfg.KDK_FILE, (json.dumps(kdk, indent=2) + "\n").encode(), mode=0o600)
    metadata = keys.participant_metadata(config.pid, [keys.public_jwk(issuer, config.issuer_kid)],
                                         [keys.public_jwk(auth, config.authtoken_kid)],
                                         name=config.organisation_name)
    cfg.write_file(data_dir / cfg.METADATA_FILE,
                   (json.dumps(metadata, indent=2, ensure_ascii=False) + "\n").encode(), mode=0o644)
    os.chmod(data_dir, 0o700)
