"""TPM 2.0 HMAC keys as challenge-response keys for KeePass databases.

`TpmHmac` is a challenge-response provider for kdbxtool: an HMAC key kept inside the TPM answers
the database's challenge exactly as a YubiKey slot in variable-length HMAC mode would, and exactly
as the keepassxc-tpm KeePassXC fork does, so one TPM key opens the same database from KeePassXC
and from Python. Keys are made with the `tpm-hmac` command (`tpm-hmac create`, `tpm-hmac import`).

    from kdbxtool import Database
    from keepassxc_tpm import TpmHmac

    db = Database.open("vault.kdbx", password="secret",
                       challenge_response_provider=TpmHmac(key_handle=0x81000100))
"""

from ._native import (
    BadChallenge,
    Lockout,
    MetadataError,
    NoSuchKey,
    NoTpm,
    NotHmacKey,
    PinRequired,
    PolicyFailed,
    StorageKeyChanged,
    TpmError,
    WrongPin,
)
from ._provider import AmbiguousKey, TpmHmac, list_keys

__all__ = [
    "AmbiguousKey",
    "BadChallenge",
    "Lockout",
    "MetadataError",
    "NoSuchKey",
    "NoTpm",
    "NotHmacKey",
    "PinRequired",
    "PolicyFailed",
    "StorageKeyChanged",
    "TpmError",
    "TpmHmac",
    "WrongPin",
    "list_keys",
]
