#!/usr/bin/env python3
"""Runs a command on a pseudo-terminal that is its controlling terminal, as a person at a terminal
would, for the tests of typed PINs.

Usage: pty.py [--timeout S] [--answer REGEX DELAY TEXT]... -- COMMAND [ARGS...]
Each time the output matches the next REGEX, waits DELAY seconds and types TEXT (a Python
escape string: "1234\\n", "\\x03" for Ctrl-C). Prints one JSON object: the exit code ("rc"; a
signal as -N; 124 on timeout), whether the terminal has echo on afterwards ("echo"), and the output.
"""
import fcntl
import json
import os
import re
import select
import subprocess
import sys
import termios
import time


def main(argv):
    timeout, answers, i = 60.0, [], 0
    while argv[i] != "--":
        if argv[i] == "--timeout":
            timeout, i = float(argv[i + 1]), i + 2
        elif argv[i] == "--answer":
            text = argv[i + 3].encode().decode("unicode_escape").encode("latin-1")
            answers.append((re.compile(argv[i + 1]), float(argv[i + 2]), text))
            i += 4
        else:
            sys.exit(f"pty.py: unknown option {argv[i]}")
    master, slave = os.openpty()

    def controlling_terminal():
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    child = subprocess.Popen(argv[i + 1:], stdin=slave, stdout=slave, stderr=slave,
                             preexec_fn=controlling_terminal, close_fds=True)
    deadline = time.monotonic() + timeout
    output, seen = b"", 0
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                chunk = b""
            output += chunk
        if answers and answers[0][0].search(output[seen:].decode("utf-8", "replace")):
            _, delay, text = answers.pop(0)
            time.sleep(delay)
            os.write(master, text)
            seen = len(output)
        if child.poll() is not None and not ready:
            break
    rc = child.poll()
    if rc is None:
        child.kill()
        child.wait()
        rc = 124
    echo = bool(termios.tcgetattr(slave)[3] & termios.ECHO)
    print(json.dumps({"rc": rc, "echo": echo, "output": output.decode("utf-8", "replace")}))


if __name__ == "__main__":
    main(sys.argv[1:])
