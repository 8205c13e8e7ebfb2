#!/usr/bin/env python3
"""The client half of test-yubikit.sh (issue 23): yubikit (PyPI yubikey-manager) talks to the reader
driver's card through pcscd as it talks to a YubiKey over NFC: ykman.pcsc finds the reader, a
SmartCardConnection is opened, and a YubiOtpSession reads the serial and asks slot 1 for
HMAC-SHA1 responses. Prints one JSON object (the caller compares it with tpm-hmac and a software
HMAC). Not a test on its own.

Usage: yubikit-client.py READER_NAME_PART CHALLENGE_HEX...
Exit codes: 0 (the JSON says what happened), 1 the reader or its card was not found, 2 usage.
"""

import json
import sys
import time


def attempt(call, *args):
    """call(*args), or "error: <exception>" (yubikit raises for a refused or unsupported command)."""
    try:
        return call(*args)
    except Exception as e:
        return f"error: {type(e).__name__}: {e}"


def main() -> int:
    if len(sys.argv) < 3:
        print(__doc__.split("Usage:")[1].split("Exit")[0].strip(), file=sys.stderr)
        return 2
    name, challenges = sys.argv[1], [bytes.fromhex(c) for c in sys.argv[2:]]

    from ykman.pcsc import list_devices, list_readers
    from yubikit.core.smartcard import SmartCardConnection
    from yubikit.yubiotp import SLOT, YubiOtpSession

    out = {"readers": [r.name for r in list_readers()]}
    devices = list_devices(name)
    if len(devices) != 1:
        out["error"] = f"{len(devices)} readers match {name!r}"
        print(json.dumps(out))
        return 1
    device = devices[0]
    out["transport"] = str(device.transport)
    t0 = time.monotonic()
    with device.open_connection(SmartCardConnection) as conn:
        session = YubiOtpSession(conn)
        out["version"] = str(session.version)
        out["serial"] = attempt(session.get_serial)
        state = attempt(session.get_config_state)
        if isinstance(state, str):
            out["slot1_configured"] = out["slot2_configured"] = state
        else:
            out["slot1_configured"] = attempt(state.is_configured, SLOT.ONE)
            out["slot2_configured"] = attempt(state.is_configured, SLOT.TWO)
        out["responses"] = [attempt(lambda c=c: session.calculate_hmac_sha1(SLOT.ONE, c).hex()) for c in challenges]
        out["slot2"] = attempt(lambda: session.calculate_hmac_sha1(SLOT.TWO, challenges[0]).hex())
    out["secs"] = round(time.monotonic() - t0, 3)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
