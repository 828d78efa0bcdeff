"""Where the master key comes from: the environment, a private key file, or a new local file.

Order: `INTEGRATIONS_MASTER_KEY` (base64 or hex of 32 bytes); else the key file
(`INTEGRATIONS_MASTER_KEY_FILE`, default `data/master.key`), which must be readable by its owner
only; else, when asked to (`create=True`: first `make run`, first `credentials set`), a new key
file is written with mode 0600 and a warning that it is for local use. During a master-key
rotation the previous key comes from `INTEGRATIONS_MASTER_KEY_OLD` or `--old-key-file`.

Each key has an id (a one-way fingerprint) stored beside every data key it wraps, so a rotation
knows which rows still need re-wrapping and can resume after an interruption.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import stat
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TextIO

from pydantic import SecretBytes

from integrations.credentials._crypto import KEY_BYTES
from integrations.errors import CredentialError

ENV_KEY = "INTEGRATIONS_MASTER_KEY"
ENV_OLD_KEY = "INTEGRATIONS_MASTER_KEY_OLD"
ENV_KEY_FILE = "INTEGRATIONS_MASTER_KEY_FILE"
DEFAULT_KEY_FILE = Path("data/master.key")

LOCAL_KEY_WARNING = (
    "warning: generated a new master key at {path} for LOCAL USE ONLY. Anyone who can read this file "
    "can decrypt the stored credentials, and losing it makes them unreadable. In production set "
    f"{ENV_KEY} from a secret manager instead."
)


@dataclass(frozen=True, repr=False)
class MasterKey:
    """A 256-bit master key and its public id. Its repr shows the id and origin, never the key."""

    key: SecretBytes
    key_id: str
    source: str = "given"

    @classmethod
    def from_bytes(cls, raw: bytes, source: str = "given") -> MasterKey:
        if len(raw) != KEY_BYTES:
            raise CredentialError(f"the master key from {source} is {len(raw)} bytes; it must be {KEY_BYTES}",
                                  hint=_KEY_FORMAT_HINT)
        key_id = hashlib.sha256(b"integrations master key id\x00" + raw).hexdigest()[:16]
        return cls(SecretBytes(raw), key_id, source)

    @classmethod
    def from_text(cls, text: str, source: str) -> MasterKey:
        """Base64 (standard or URL-safe) or hex text of 32 bytes."""
        text = text.strip()
        raw: bytes | None = None
        if len(text) == KEY_BYTES * 2:
            try:
                raw = bytes.fromhex(text)
            except ValueError:
                raw = None
        if raw is None:
            try:
                raw = base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)
            except (binascii.Error, ValueError):
                raise CredentialError(f"the master key from {source} is neither base64 nor hex",
                                      hint=_KEY_FORMAT_HINT) from None
        return cls.from_bytes(raw, source)

    @classmethod
    def generate(cls, source: str = "generated") -> MasterKey:
        return cls.from_bytes(os.urandom(KEY_BYTES), source)

    def to_text(self) -> str:
        return base64.urlsafe_b64encode(self.key.get_secret_value()).decode("ascii")

    def __repr__(self) -> str:
        return f"MasterKey(key_id={self.key_id!r}, source={self.source!r})"

    __str__ = __repr__


_KEY_FORMAT_HINT = ("generate one with: python -c \"import os,base64;"
                    "print(base64.urlsafe_b64encode(os.urandom(32)).decode())\"")


class MasterKeyProvider(Protocol):
    """Gives the current master key (lazily: listing needs none) and any previous ones."""

    def current(self) -> MasterKey: ...

    def previous(self) -> Sequence[MasterKey]: ...


@dataclass
class StaticMasterKeys:
    """Keys given directly (tests, embedding applications)."""

    current_key: MasterKey
    previous_keys: Sequence[MasterKey] = ()

    def current(self) -> MasterKey:
        return self.current_key

    def previous(self) -> Sequence[MasterKey]:
        return tuple(self.previous_keys)


@dataclass
class EnvironmentMasterKeys:
    """The configured master key: `INTEGRATIONS_MASTER_KEY`, else the key file, else a new file."""

    key_file: Path | None = None
    old_key_files: Sequence[Path] = ()
    create: bool = False
    environ: Mapping[str, str] | None = None
    warn_to: TextIO | None = None
    _current: MasterKey | None = field(default=None, init=False, repr=False)

    def _env(self) -> Mapping[str, str]:
        return os.environ if self.environ is None else self.environ

    @property
    def path(self) -> Path:
        return Path(self.key_file or self._env().get(ENV_KEY_FILE) or DEFAULT_KEY_FILE)

    def current(self) -> MasterKey:
        if self._current is None:
            env = self._env()
            if env.get(ENV_KEY):
                self._current = MasterKey.from_text(env[ENV_KEY], ENV_KEY)
            elif self.path.exists() or not self.create:
                self._current = read_key_file(self.path)
            else:
                self._current = create_key_file(self.path, warn_to=self.warn_to)
        return self._current

    def previous(self) -> Sequence[MasterKey]:
        keys = []
        if self._env().get(ENV_OLD_KEY):
            keys.append(MasterKey.from_text(self._env()[ENV_OLD_KEY], ENV_OLD_KEY))
        keys.extend(read_key_file(Path(p)) for p in self.old_key_files)
        return keys


def read_key_file(path: Path) -> MasterKey:
    """Read a key file, refusing one that its group or others can read or write."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise CredentialError(f"no master key: {ENV_KEY} is not set and the key file does not exist", file=str(path),
                              hint=f"run `make run` or `integrations credentials set` once to create a local key, "
                                   f"or set {ENV_KEY}") from None
    if os.name == "posix" and info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CredentialError(
            f"the master key file is accessible to other users (mode {stat.S_IMODE(info.st_mode):04o}); "
            "refusing to use it", file=str(path), hint=f"chmod 600 {path}")
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as err:
        raise CredentialError(f"cannot read the master key file: {type(err).__name__}", file=str(path)) from None
    return MasterKey.from_text(text, f"file {path}")


def create_key_file(path: Path, *, warn_to: TextIO | None = None) -> MasterKey:
    """Write a new random key to `path` with mode 0600 and warn that it is for local use."""
    key = MasterKey.generate(source=f"file {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process got there first: use its key
        return read_key_file(path)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        if os.name == "posix":
            os.fchmod(out.fileno(), 0o600)
        out.write(key.to_text() + "\n")
    print(LOCAL_KEY_WARNING.format(path=path), file=warn_to or sys.stderr)
    return key
