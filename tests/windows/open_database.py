"""Run under wine by the Windows wheel's embeddable CPython: opens the kdbxtool database PATH with
the password and TpmHmac(key_file=KEY_FILE), and prints the entry's password; on failure prints
the exception's class and message on one line and exits 1.
Usage: python.exe open_database.py PATH KEY_FILE"""

import sys

import kdbxtool
from keepassxc_tpm import TpmHmac

PASSWORD = "correct horse battery staple"

try:
    provider = TpmHmac(key_file=sys.argv[2])
    db = kdbxtool.Database.open(sys.argv[1], password=PASSWORD, challenge_response_provider=provider)
    print("opened:", db.find_entries(title="Made on Linux")[0].password)
except Exception as error:  # the test reads the class and message
    print(f"refused: {type(error).__name__}: {error}")
    sys.exit(1)
