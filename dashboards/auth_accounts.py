"""Accounts of the operations app: users, roles and password hashes, from a configuration file.

File (``SC_ACCOUNTS_FILE``), JSON::

    {"users": [{"user": "olga", "role": "operator", "password_hash": "scrypt$16384$8$1$<salt>$<hash>"}]}

Roles, from most to least: ``operator`` (everything, incident actions), ``leadership`` (the brief,
every page, incidents read-only), ``viewer`` (wall, topic pages, data health). Passwords are stored
only as scrypt hashes (``sitcen passwd`` writes them); verification is constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from core.errors import ConfigError

ROLES: tuple[str, ...] = ("operator", "leadership", "viewer")
RANK = {"viewer": 0, "leadership": 1, "operator": 2}
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


@dataclass(frozen=True, slots=True)
class Account:
    """One user."""

    user: str
    role: str
    password_hash: str

    def at_least(self, role: str) -> bool:
        """Whether this account's role includes ``role``."""
        return RANK[self.role] >= RANK[role]


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """An scrypt hash string for ``password``."""
    if not password:
        raise ValueError("empty password")
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return "$".join(["scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P),
                     base64.b64encode(salt).decode(), base64.b64encode(digest).decode()])


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches the hash ``stored`` (False for a malformed hash)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


def load_accounts(path: Path | str) -> dict[str, Account]:
    """Read the accounts file.

    Raises:
        ConfigError: unreadable, malformed, an unknown role, a duplicate user (naming the entry).
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigError(f"accounts file {path}: {err}") from err
    users = data.get("users") if isinstance(data, dict) else None
    if not isinstance(users, list):
        raise ConfigError(f"accounts file {path}: expected {{\"users\": [...]}}")
    out: dict[str, Account] = {}
    for i, entry in enumerate(users):
        where = f"accounts file {path}, users[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: not an object")
        user, role, hashed = entry.get("user"), entry.get("role"), entry.get("password_hash")
        if not isinstance(user, str) or not user.strip() or len(user) > 64:
            raise ConfigError(f"{where}: user must be a non-empty name of at most 64 characters")
        if role not in ROLES:
            raise ConfigError(f"{where}: role {role!r} is not one of {list(ROLES)}")
        if not isinstance(hashed, str) or not hashed.startswith("scrypt$"):
            raise ConfigError(f"{where}: password_hash must be an scrypt hash (use sitcen passwd)")
        if user in out:
            raise ConfigError(f"{where}: user {user!r} is listed twice")
        out[user] = Account(user=user, role=role, password_hash=hashed)
    return out


def write_accounts(path: Path | str, accounts: dict[str, Account]) -> None:
    """Write the accounts file (mode 0600)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"users": [{"user": a.user, "role": a.role, "password_hash": a.password_hash}
                      for a in accounts.values()]}
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(body, indent=1, ensure_ascii=False), encoding="utf-8")
    os.chmod(tmp, 0o600)
    tmp.replace(path)


# --- files made on first start -------------------------------------------------------------

DEMO_USERS: tuple[str, ...] = ("operator", "leadership", "viewer")
DEMO_ACCOUNTS = "demo-accounts.json"
DEMO_PASSWORDS = "demo-passwords.txt"
SECRET_KEY_FILE = "secret-key"


@dataclass(frozen=True, slots=True)
class DemoAccounts:
    """Where the demo accounts are, and whether this call made them."""

    accounts: Path
    passwords: Path
    created: bool


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to a new file readable by the owner only (mode 0600 from the start)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.chmod(path, 0o600)


def _publish(tmp: Path, path: Path) -> bool:
    """Move ``tmp`` to ``path`` unless ``path`` exists (atomic, so two processes starting together
    agree on one file). Returns whether ``tmp`` became ``path``."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)
    return True


def ensure_demo_accounts(data_dir: Path | str) -> DemoAccounts:
    """The demo accounts of a node without ``SC_ACCOUNTS_FILE``: made on first start, kept after.

    ``<data_dir>/demo-accounts.json`` holds the hashes of three accounts named after their roles
    (``operator``, ``leadership``, ``viewer``); ``<data_dir>/demo-passwords.txt`` (mode 0600)
    holds their random passwords, for whoever started the demo.
    """
    data_dir = Path(data_dir)
    accounts, passwords = data_dir / DEMO_ACCOUNTS, data_dir / DEMO_PASSWORDS
    if accounts.exists():
        return DemoAccounts(accounts, passwords, created=False)
    data_dir.mkdir(parents=True, exist_ok=True)
    plain = {user: secrets.token_urlsafe(12) for user in DEMO_USERS}
    stamp = f"{os.getpid()}-{secrets.token_hex(4)}"
    tmp_pw = data_dir / f".{DEMO_PASSWORDS}.{stamp}"
    tmp_acc = data_dir / f".{DEMO_ACCOUNTS}.{stamp}"
    _write_private(tmp_pw, "# Demo accounts of the Situation Center operations app (user role password).\n"
                           "# Delete demo-accounts.json and this file to make new ones; set SC_ACCOUNTS_FILE "
                           "for real accounts.\n"
                   + "".join(f"{user} {user} {pw}\n" for user, pw in plain.items()))
    write_accounts(tmp_acc, {u: Account(u, u, hash_password(pw)) for u, pw in plain.items()})
    if not _publish(tmp_acc, accounts):
        tmp_pw.unlink(missing_ok=True)
        return DemoAccounts(accounts, passwords, created=False)
    tmp_pw.replace(passwords)
    return DemoAccounts(accounts, passwords, created=True)


def ensure_secret_key(data_dir: Path | str) -> str:
    """The session signing key of a node without ``SC_SECRET_KEY``: ``<data_dir>/secret-key``
    (mode 0600), made once so that sessions survive restarts.

    Raises:
        ConfigError: the file exists but is unreadable or too short to be a key.
    """
    data_dir = Path(data_dir)
    path = data_dir / SECRET_KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        tmp = data_dir / f".{SECRET_KEY_FILE}.{os.getpid()}-{secrets.token_hex(4)}"
        _write_private(tmp, secrets.token_urlsafe(48) + "\n")
        _publish(tmp, path)
    try:
        key = path.read_text(encoding="utf-8").strip()
    except OSError as err:
        raise ConfigError(f"secret key file {path}: {err}") from err
    if len(key) < 16:
        raise ConfigError(f"secret key file {path} holds fewer than 16 characters; delete it to make a new key "
                          f"or set SC_SECRET_KEY")
    return key
