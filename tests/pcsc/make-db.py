#!/usr/bin/env python3
"""Held-out test database for the stock-KeePassXC tests (issue 23): a KDBX4 database protected by a
password plus a challenge-response key, made without KeePassXC and without the TPM, with kdbxtool
(its provider branch). The response is computed in software: HMAC-SHA1 of the known secret over
what a YubiKey slot in variable-length mode hashes for KeePassXC's challenge (the KDF seed padded
PKCS#7-style to 64 bytes, then every trailing byte equal to the last one dropped; see
rust/core/src/challenge.rs). So if stock KeePassXC opens it through the reader driver, the TPM
answered what a YubiKey holding that secret would answer. Entries: "Bank" and "Mail".

Usage: make-db.py SECRET_HEX_FILE PASSWORD_FILE OUT.kdbx
  SECRET_HEX_FILE: the key's secret as hex (as `tpm-hmac import --secret-file` reads it);
  PASSWORD_FILE: the master password (its first line).
Needs Python >= 3.12 with kdbxtool's provider branch (tests/pcsc/lib.sh makes such a venv).
Exit codes: 0 written, 1 failure, 2 usage.
"""

import hashlib
import hmac
import sys


def keepassxc_message(challenge: bytes) -> bytes:
    """What a variable-length YubiKey HMAC slot hashes for KeePassXC's challenge."""
    if len(challenge) > 64:
        raise ValueError("a challenge has at most 64 bytes")
    pad = 64 - len(challenge)
    block = challenge + bytes([pad]) * pad
    return block.rstrip(block[-1:])


class SoftwareSlot:
    """A YubiKey slot 1 in variable-length HMAC-SHA1 mode holding the secret (software, tests only)."""

    def __init__(self, secret: bytes):
        self._secret = secret
        self.challenges = 0

    def challenge_response(self, challenge: bytes):
        from kdbxtool.security.memory import SecureBytes

        self.challenges += 1
        return SecureBytes(hmac.new(self._secret, keepassxc_message(bytes(challenge)), hashlib.sha1).digest())


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__.split("Usage:")[1].split("Needs")[0].strip(), file=sys.stderr)
        return 2
    secret_file, password_file, out = sys.argv[1:]
    with open(secret_file, encoding="ascii") as f:
        secret = bytes.fromhex(f.read().strip())
    with open(password_file, encoding="utf-8") as f:
        password = f.readline().rstrip("\n")

    import kdbxtool
    from kdbxtool.security.kdf import Argon2Config

    slot = SoftwareSlot(secret)
    db = kdbxtool.Database.create(password=password, kdf_config=Argon2Config.fast())
    db.root_group.create_entry(title="Bank", username="alice", password="bank-password")
    db.root_group.create_entry(title="Mail", username="alice@example.org", password="mail-password")
    db.save(out, challenge_response_provider=slot)
    if slot.challenges == 0:
        print("make-db: kdbxtool never asked the challenge-response provider", file=sys.stderr)
        return 1
    with open(out, "rb") as f:
        header = f.read(12)
    if header[:8] != bytes.fromhex("03d9a29a67fb4bb5") or int.from_bytes(header[10:12], "little") != 4:
        print(f"make-db: {out} is not a KDBX4 file (header {header.hex()})", file=sys.stderr)
        return 1
    # Read back with the same software slot: the file is what was meant.
    again = kdbxtool.Database.open(out, password=password, challenge_response_provider=SoftwareSlot(secret))
    titles = sorted(e.title for e in again.root_group.entries)
    if titles != ["Bank", "Mail"]:
        print(f"make-db: read back {titles}, not Bank and Mail", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
