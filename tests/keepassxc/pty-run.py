#!/usr/bin/env python3
"""Runs a command on a pseudo-terminal and answers its prompts, for the tests that need a terminal
(keepassxc-cli asks for a TPM key's PIN on /dev/tty, not on stdin).

Usage: pty-run.py [--timeout S] [--answer REGEX TEXT]... -- COMMAND [ARGS...]
Each time the output matches the next REGEX (Python syntax, searched in what came since the last
answer), TEXT plus a newline is typed. The command's output goes to stdout; the exit code is the
command's (124 on timeout).
"""
import os
import pty
import re
import select
import sys
import time


def main(argv):
    timeout = 30.0
    answers = []
    i = 0
    while i < len(argv) and argv[i] != "--":
        if argv[i] == "--timeout":
            timeout = float(argv[i + 1])
            i += 2
        elif argv[i] == "--answer":
            answers.append((re.compile(argv[i + 1]), argv[i + 2]))
            i += 3
        else:
            sys.exit(f"pty-run.py: unknown option {argv[i]}")
    command = argv[i + 1:]
    if not command:
        sys.exit("usage: pty-run.py [--timeout S] [--answer REGEX TEXT]... -- COMMAND [ARGS...]")

    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(command[0], command)

    deadline = time.monotonic() + timeout
    pending = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            sys.stdout.buffer.write(b"\npty-run.py: timed out\n")
            return 124
        ready, _, _ = select.select([fd], [], [], min(left, 0.2))
        if ready:
            try:
                data = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                data = b""
            if not data:
                break
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
            pending += data
            if answers and answers[0][0].search(pending.decode("utf-8", "replace")):
                os.write(fd, answers.pop(0)[1].encode() + b"\n")
                pending = b""
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
