#!/usr/bin/env python3
"""A TPM character device for a booted test container, where the kernel has no TPM (no CUSE, no
vtpm proxy here): a pseudo-terminal whose slave is linked at LINK (e.g. /dev/tpmrm0) with the owner,
group and mode Debian's tpm-udev gives the real node (root:tss 0660), relaying each TPM command to
swtpm's TCP data port. Like the kernel's resource manager behind /dev/tpmrm0, it flushes every
transient object and session a client left in the TPM once the device is closed (as pcscd's exit
closes it), so that nothing piles up where the real node would not let it; it logs each close
("CLOSED, N left and flushed") and each command's code ("CMD 0x0000017E"), which the tests and
the benchmark read. Unlike the kernel it does not virtualise handles between clients open at the
same moment: the tests use the node from one program at a time.

Test stand-in only: it gives no security.

Usage: tpm-node.py --port PORT --link /dev/tpmrm0 [--owner tss] [--group tss] [--mode 660] [--log FILE]
Runs until SIGTERM, then removes the link. Exit codes: 0 stopped, 1 swtpm unreachable or bad set-up.
"""

import argparse
import grp
import os
import pwd
import select
import signal
import socket
import struct
import sys
import time
import tty

TPM_ST_NO_SESSIONS = 0x8001
TPM_CC_FLUSH_CONTEXT = 0x165
TPM_CC_GET_CAPABILITY = 0x17A
TPM_CAP_HANDLES = 1
# Transient objects, loaded sessions (HMAC and policy), saved sessions.
FLUSHED_RANGES = (0x80000000, 0x02000000, 0x03000000)


class Tpm:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)

    def _recv(self, n):
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("swtpm closed the connection")
            data += chunk
        return data

    def command(self, cmd):
        self.sock.sendall(cmd)
        head = self._recv(10)
        size = struct.unpack(">I", head[2:6])[0]
        return head + self._recv(max(size - 10, 0))

    def handles(self, first):
        body = struct.pack(">III", TPM_CAP_HANDLES, first, 64)
        resp = self.command(struct.pack(">HII", TPM_ST_NO_SESSIONS, 10 + len(body), TPM_CC_GET_CAPABILITY) + body)
        if struct.unpack(">I", resp[6:10])[0] != 0:
            return []
        count = struct.unpack(">I", resp[15:19])[0]
        # Loaded sessions come back with their own handles: 0x02 (HMAC) and 0x03 (policy).
        return list(struct.unpack(">%dI" % count, resp[19:19 + 4 * count]))

    def flush_all(self):
        left = [h for first in FLUSHED_RANGES for h in self.handles(first)]
        for handle in left:
            self.command(struct.pack(">HIII", TPM_ST_NO_SESSIONS, 14, TPM_CC_FLUSH_CONTEXT, handle))
        return left


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--link", required=True)
    parser.add_argument("--owner", default="tss")
    parser.add_argument("--group", default="tss")
    parser.add_argument("--mode", default="660")
    parser.add_argument("--log", default=None)
    args = parser.parse_args()

    out = open(args.log, "a", buffering=1) if args.log else sys.stderr

    def log(line):
        out.write("%.3f %s\n" % (time.time(), line))

    try:
        tpm = Tpm(args.port)
    except OSError as e:
        print("tpm-node: cannot reach swtpm on 127.0.0.1:%d: %s" % (args.port, e), file=sys.stderr)
        return 1
    def new_device():
        """A fresh pty behind the link: nothing a former client left unread can reach the next."""
        master, slave = os.openpty()
        tty.setraw(slave)
        name = os.ttyname(slave)
        # Closed here, so that the master reads EIO whenever no client has the device open.
        os.close(slave)
        os.chown(name, pwd.getpwnam(args.owner).pw_uid, grp.getgrnam(args.group).gr_gid)
        os.chmod(name, int(args.mode, 8))
        tmp = args.link + ".new"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(name, tmp)
        os.rename(tmp, args.link)
        return master, name

    master, name = new_device()
    log("READY %s -> %s" % (args.link, name))

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    used = False
    pending = b""
    try:
        while not stop:
            try:
                ready, _, _ = select.select([master], [], [], 0.2)
                if not ready:
                    continue
                chunk = os.read(master, 65536)
            except OSError:
                # EIO: every client closed the device, as the kernel's resource manager sees a close.
                if used:
                    left = tpm.flush_all()
                    log("CLOSED, %d left and flushed%s" % (len(left), "".join(" 0x%08X" % h for h in left)))
                    used = False
                    # What a client killed in the middle of a command left unread goes with its
                    # file, as with the kernel's device: the next client opens a new pty.
                    os.close(master)
                    master, name = new_device()
                pending = b""
                time.sleep(0.02)
                continue
            pending += chunk
            while len(pending) >= 10:
                size = struct.unpack(">I", pending[2:6])[0]
                if not 10 <= size <= 4096:
                    log("DROPPED %d bytes: not a TPM command" % len(pending))
                    pending = b""
                    break
                if len(pending) < size:
                    break
                cmd, pending = pending[:size], pending[size:]
                log("CMD 0x%08X" % struct.unpack(">I", cmd[6:10])[0])
                used = True
                os.write(master, tpm.command(cmd))
    finally:
        if os.path.islink(args.link) and os.readlink(args.link) == name:
            os.unlink(args.link)
        log("STOPPED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
