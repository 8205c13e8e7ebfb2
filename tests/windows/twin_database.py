"""Makes, on Linux, a kdbxtool database protected by a password and a YubiKey-style slot holding
SECRET (a software twin of the slot, driven as KeePassXC drives one): the database a user already
has before importing the same secret into a TPM key file. Usage: twin_database.py PATH SECRET_HEX"""

import hashlib
import hmac
import sys

import kdbxtool
from kdbxtool.security.kdf import Argon2Config
from kdbxtool.security.memory import SecureBytes

PASSWORD = "correct horse battery staple"


def keepassxc_message(challenge: bytes) -> bytes:
    """What a variable-length slot hashes of KeePassXC's challenge (PKCS#7 padding to 64 bytes,
    then the trailing run of the last byte dropped)."""
    pad = 64 - len(challenge)
    block = challenge + bytes([pad]) * pad
    end = len(block)
    while end > 0 and block[end - 1] == block[-1]:
        end -= 1
    return block[:end]


class SoftwareTwin:
    def __init__(self, secret: bytes) -> None:
        self.secret = secret

    def challenge_response(self, challenge: bytes) -> SecureBytes:
        return SecureBytes(hmac.new(self.secret, keepassxc_message(challenge), hashlib.sha1).digest())


db = kdbxtool.Database.create(password=PASSWORD, kdf_config=Argon2Config.fast())
db.root_group.create_entry(title="Made on Linux", username="alice", password="s3cret")
db.save(sys.argv[1], challenge_response_provider=SoftwareTwin(bytes.fromhex(sys.argv[2])))
