"""The kdbxtool provider and the key listing, over the core's connection (`_native`)."""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Dict, List, Optional, Union

from . import _native
from ._native import NoSuchKey, PinRequired, TpmError, WrongPin

PinSource = Union[str, bytes, bytearray, Callable[[], Union[str, bytes, bytearray]]]
"""A PIN as text, as bytes, or a callable asked for it when the key needs it."""

PADDINGS = ("keepassxc", "yubikey-manager")


class AmbiguousKey(TpmError):
    """No key handle was given and the TPM holds several HMAC keys."""


def list_keys(tcti: Optional[str] = None) -> List[Dict[str, Any]]:
    """The HMAC keys in the TPM, with the fields `tpm-hmac list --json` prints.

    Each key is a dict: handle ("0x81000100"), serial (KeePassXC's, the handle as a number), slot
    (1), algorithm ("sha1" or "sha256"), origin ("generated" or "imported"), display_name,
    keepassxc (keepassxc-cli's --yubikey value), no_da (True for keys without a PIN) and pcr_bound.
    `tcti` picks the TPM (e.g. "device:/dev/tpmrm0"); by default TPM2TOOLS_TCTI, else /dev/tpmrm0,
    else tpm2-abrmd. Raises NoTpm when no TPM can be reached.
    """
    return json.loads(_native.Connection(tcti).list_keys())


def _handle_text(key_handle: Union[int, str]) -> str:
    if isinstance(key_handle, bool) or not isinstance(key_handle, (int, str)):
        raise TypeError(f"key_handle must be an int or a str, not {type(key_handle).__name__}")
    if isinstance(key_handle, int):
        if not 0 <= key_handle <= 0xFFFFFFFF:
            raise NoSuchKey(f"{key_handle} is not a TPM handle; give one between 0x81000000 and 0x817FFFFF")
        return f"0x{key_handle:08x}"
    return key_handle.strip()


def _pin_bytes(pin: Union[str, bytes, bytearray]) -> bytearray:
    if isinstance(pin, str):
        return bytearray(pin.encode("utf-8"))
    if isinstance(pin, (bytes, bytearray)):
        return bytearray(pin)
    raise TypeError(f"a PIN must be a str or bytes, not {type(pin).__name__}")


def _wipe(buffer: bytearray) -> None:
    buffer[:] = bytes(len(buffer))


def _secure(response: bytearray) -> Any:
    """kdbxtool's SecureBytes when kdbxtool is there (it reads `.data`), else bytes."""
    try:
        from kdbxtool.security.memory import SecureBytes
    except ImportError:
        result: Any = bytes(response)
    else:
        result = SecureBytes(response)
    _wipe(response)
    return result


class TpmHmac:
    """A TPM HMAC key as kdbxtool's challenge-response provider.

    key_handle: the key's persistent handle as an int (0x81000100) or a str ("0x81000100"), or
        KeePassXC's serial for it (2164261120). None takes the only HMAC key in the TPM, and
        refuses when there are none (NoSuchKey) or several (AmbiguousKey).
    key_file: instead of key_handle, the path of a key kept in a TSS2 PRIVATE KEY file
        (`tpm-hmac create --key-file`); the key is found by its record in the user's record file.
    tcti: the TPM (e.g. "device:/dev/tpmrm0", "tabrmd:"); by default TPM2TOOLS_TCTI, else
        /dev/tpmrm0, else tpm2-abrmd.
    pin: for a key with a PIN: a str or bytes, or (better) a callable that returns it, asked only
        when the key needs it and not kept. A PIN given as a value is kept for later challenges
        (kdbxtool challenges again on every save) until the TPM refuses it: then it is wiped and
        never sent again, so a wrong PIN costs one dictionary-attack try, not one per save.
    padding: "keepassxc" (default) answers what KeePassXC gets from a YubiKey slot holding the
        same secret; "yubikey-manager" answers what kdbxtool's own YubiKeyHmacSha1 gets from one
        (it pads differently: the two differ for about 1 seed in 256, those ending in 0x20).

    The key is checked when the provider is made: a handle that holds no HMAC key (0x81000001 is
    usually the storage root key) raises NotHmacKey or NoSuchKey at once. Bus encryption, the
    10 s timeout, PIN and PCR checks are those of the keepassxc-tpm core.
    """

    def __init__(
        self,
        key_handle: Union[int, str, None] = None,
        *,
        key_file: Union[str, "os.PathLike[str]", None] = None,
        tcti: Optional[str] = None,
        pin: Optional[PinSource] = None,
        padding: str = "keepassxc",
    ) -> None:
        if padding not in PADDINGS:
            raise ValueError(f'padding must be "keepassxc" or "yubikey-manager", not {padding!r}')
        self._padding = padding
        self._connection = _native.Connection(tcti)
        self._pin: Optional[Callable[[], Union[str, bytes, bytearray]]] = None
        self._pin_value: Optional[bytearray] = None
        if callable(pin):
            self._pin = pin
        elif pin is not None:
            self._pin_value = _pin_bytes(pin)
        if key_file is not None:
            if key_handle is not None:
                raise TypeError("give key_handle or key_file, not both")
            self.key = json.loads(self._connection.key(self._connection.key_file_serial(os.fspath(key_file))))
        elif key_handle is None:
            self.key = self._only_key()
        else:
            self.key = json.loads(self._connection.key(_handle_text(key_handle)))
        self.key_handle: int = int(self.key["serial"])

    def _only_key(self) -> Dict[str, Any]:
        keys = json.loads(self._connection.list_keys())
        if not keys:
            raise NoSuchKey("there is no HMAC key in this TPM; make one with `tpm-hmac create` (or `tpm-hmac import`)")
        if len(keys) > 1:
            handles = ", ".join(k["handle"] for k in keys)
            raise AmbiguousKey(f"this TPM holds several HMAC keys ({handles}); pass key_handle= to pick one")
        return keys[0]

    def challenge_response(self, challenge: bytes) -> Any:
        """The key's response to `challenge` (KeePassXC's KDF seed, 0 to 64 bytes): 20 bytes for
        an HMAC-SHA1 key, as kdbxtool's SecureBytes when kdbxtool is installed, else bytes."""
        handle = self.key["handle"]
        try:
            response = self._connection.challenge(handle, bytes(challenge), self._pin_value, self._padding)
        except WrongPin:
            self._forget_pin()
            raise
        except PinRequired:
            if self._pin is None:
                raise
            pin = _pin_bytes(self._pin())
            try:
                response = self._connection.challenge(handle, bytes(challenge), pin, self._padding)
            finally:
                _wipe(pin)
        return _secure(response)

    def _forget_pin(self) -> None:
        """Wipes a PIN given as a value after the TPM refused it."""
        if self._pin_value is not None:
            _wipe(self._pin_value)
            self._pin_value = None

    def __repr__(self) -> str:
        return f"TpmHmac(key_handle={self.key['handle']}, padding={self._padding!r})"
