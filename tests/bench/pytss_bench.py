#!/usr/bin/env python3
"""tpm2-pytss peer for the keepassxc-tpm benchmark (issue 5).

Does the same work as our paths with tpm2-pytss' ESAPI and the same password session:
  challenge: tr_from_tpmpublic(handle) once, then TPM2_HMAC with hash NULL (the key's scheme);
  list:      GetCapability(handles, 0x81000000) then ReadPublic of every persistent handle
             (tr_from_tpmpublic once per handle, cached, as our core does).
Prints one JSON object: nanoseconds for the import, the ESAPI context, the first (cold)
operation, and each of the --warm N following (warm) operations, and the last response in hex.

Run by keepassxc-tpm-bench: once per sample with --warm 0 for the cold, one-process-per-challenge
case (the parent times the whole process), and once with --warm N for the warm case.
"""
import argparse
import json
import os
import sys
import time

T0 = time.perf_counter_ns()
os.environ.setdefault("TSS2_LOG", "all+none")
from tpm2_pytss import ESAPI, ESYS_TR, TPM2_ALG, TPM2_CAP  # noqa: E402

T_IMPORT = time.perf_counter_ns()

PERSISTENT_FIRST = 0x81000000


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tcti", required=True)
    p.add_argument("--mode", choices=["challenge", "list"], default="challenge")
    p.add_argument("--handle", type=lambda s: int(s, 0), default=0x81000100)
    p.add_argument("--hex", default="", help="the message the TPM hashes (already YubiKey-trimmed)")
    p.add_argument("--warm", type=int, default=0)
    a = p.parse_args()
    message = bytes.fromhex(a.hex)

    t = time.perf_counter_ns()
    ectx = ESAPI(a.tcti)
    t_open = time.perf_counter_ns() - t
    known = {}

    def resolve(h):
        tr = known.get(h)
        if tr is None:
            tr = known[h] = ectx.tr_from_tpmpublic(h)
        return tr

    def challenge():
        digest = ectx.hmac(resolve(a.handle), message, TPM2_ALG.NULL, session1=ESYS_TR.PASSWORD)
        return bytes(digest).hex()

    def listing():
        _, data = ectx.get_capability(TPM2_CAP.HANDLES, PERSISTENT_FIRST, 64)
        names = []
        for h in data.data.handles:
            if not (0x81000000 <= int(h) <= 0x817FFFFF):
                continue
            public, _, _ = ectx.read_public(resolve(int(h)))
            if public.publicArea.type == TPM2_ALG.KEYEDHASH:
                names.append(hex(int(h)))
        return ",".join(names)

    op = challenge if a.mode == "challenge" else listing
    t = time.perf_counter_ns()
    result = op()
    t_first = time.perf_counter_ns() - t
    warm = []
    for _ in range(a.warm):
        t = time.perf_counter_ns()
        result = op()
        warm.append(time.perf_counter_ns() - t)
    for tr in known.values():
        ectx.tr_close(tr)
    ectx.close()
    json.dump(
        {
            "import_ns": T_IMPORT - T0,
            "open_ns": t_open,
            "first_ns": t_first,
            "warm_ns": warm,
            "result": result,
        },
        sys.stdout,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
