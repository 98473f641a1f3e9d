"""Member logins for the TAXII server: only a salted scrypt hash of each password is kept, in state.

`provision` hashes the passwords named by the config's `password_env` (run by `gateway onboard`, where the
operator holds them, and by `serve`); the API function then needs no password at all. A login is valid while
its user is still in the config: removing a member from the config revokes it, whatever state still holds.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Mapping
from typing import Any

from gateway.ports import StateStore
from schemas.config import HubConfig, PullChannel

# scrypt's interactive-login parameters (RFC 7914 §2): about 16 MiB and tens of milliseconds per check
_N, _R, _P = 2**14, 8, 1
_PREFIX = "taxii-user:"


def hash_password(password: str, salt: bytes | None = None) -> dict[str, Any]:
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return {"scheme": "scrypt", "n": _N, "r": _R, "p": _P, "salt": _b64(salt), "hash": _b64(digest)}


def password_matches(password: str, stored: Mapping[str, Any]) -> bool:
    if stored.get("scheme") != "scrypt":
        return False
    salt = base64.b64decode(stored["salt"])
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=int(stored["n"]), r=int(stored["r"]), p=int(stored["p"]), dklen=32
    )
    return hmac.compare_digest(digest, base64.b64decode(stored["hash"]))


def pull_users(config: HubConfig) -> dict[str, tuple[str, str]]:
    """username -> (community id, password_env) for every member login in the config."""
    users: dict[str, tuple[str, str]] = {}
    for community in config.communities:
        for channel in community.deliver:
            if isinstance(channel, PullChannel):
                for user in channel.pull.users:
                    users[user.username] = (community.id, user.password_env)
    return users


def provision(config: HubConfig, state: StateStore, env: Mapping[str, str] = os.environ) -> list[str]:
    """Store the hash of each login whose password is in `env` (unchanged passwords keep their hash).

    Returns the usernames whose `password_env` is unset: they cannot sign in until it is provisioned.
    """
    missing = []
    for username, (community, variable) in pull_users(config).items():
        password = env.get(variable)
        if not password:
            missing.append(username)
            continue
        held = state.get_cursor(_PREFIX + username)
        if held and held.get("community") == community and password_matches(password, held):
            continue
        state.put_cursor(_PREFIX + username, {"community": community, **hash_password(password)})
    return missing


class Logins:
    """Checks Basic credentials against the hashes in state; remembers recent successes for a warm process."""

    def __init__(self, state: StateStore) -> None:
        self._state = state
        self._recent: dict[tuple[str, bytes], str] = {}

    def community_of(self, config: HubConfig, username: str, password: str) -> str | None:
        """The community a login belongs to, or None if the user is unknown, removed or the password wrong."""
        configured = pull_users(config).get(username)
        if configured is None:
            return None
        stored = self._state.get_cursor(_PREFIX + username)
        if not stored or stored.get("community") != configured[0]:
            return None
        # The memo is keyed by the stored hash too, so a changed password invalidates it at once.
        memo = (username, hashlib.sha256(f"{stored['hash']}|{password}".encode()).digest())
        if memo in self._recent:
            return self._recent[memo]
        if not password_matches(password, stored):
            return None
        if len(self._recent) > 1000:
            self._recent.clear()
        self._recent[memo] = configured[0]
        return configured[0]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
