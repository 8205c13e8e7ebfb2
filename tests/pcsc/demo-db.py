#!/usr/bin/env python3
"""The stock-KeePassXC demo's database (tests/pcsc/demo.sh): a KDBX4 database protected by a
password plus the TPM key at a handle, made by kdbxtool with this project's Python provider
(keepassxc_tpm.TpmHmac: the TPM answers the challenge), so that unmodified KeePassXC can open it
through the PC/SC driver: one TPM key serving both.

Usage: demo-db.py HANDLE PASSWORD_FILE OUT.kdbx   (TPM2TOOLS_TCTI names the TPM, as for tpm-hmac)
Exit codes: 0 written, 1 failure, 2 usage.
"""

import sys


def main() -> int:
    if len(sys.argv) != 4:
        print("usage: demo-db.py HANDLE PASSWORD_FILE OUT.kdbx", file=sys.stderr)
        return 2
    handle, password_file, out = sys.argv[1:]
    with open(password_file, encoding="utf-8") as f:
        password = f.readline().rstrip("\n")

    import kdbxtool
    from kdbxtool.security.kdf import Argon2Config
    from keepassxc_tpm import TpmError, TpmHmac

    try:
        key = TpmHmac(handle)
        db = kdbxtool.Database.create(password=password, kdf_config=Argon2Config.fast())
        db.root_group.create_entry(title="Example bank", username="alice", password="bank-password")
        db.root_group.create_entry(title="Example mail", username="alice@example.org", password="mail-password")
        db.save(out, challenge_response_provider=key)
    except TpmError as e:
        print(f"demo-db: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
