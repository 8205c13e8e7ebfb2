"""Fixtures for the keepassxc_tpm tests: a private swtpm per test (killed by its PID at the end),
the tpm-hmac tool against it, and the KeePassXC fork builds when they are there."""

import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SECRET = bytes.fromhex("303132333435363738393a3b3c3d3e3f40414243")
FORK_VERSIONS = ("2.7.4", "2.7.10")


def keepassxc_rule(challenge: bytes) -> bytes:
    """What a variable-length YubiKey slot hashes for KeePassXC (PKCS#7 to 64, trailing run popped)."""
    block = challenge + bytes([64 - len(challenge)]) * (64 - len(challenge))
    return block.rstrip(block[-1:])


def yubikey_manager_rule(challenge: bytes) -> bytes:
    """What it hashes when yubikey-manager pads (a byte unlike the last): the challenge itself."""
    return challenge


def hmac_sha1(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha1).digest()


def free_port_pair() -> int:
    while True:
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            with socket.socket() as b:
                try:
                    b.bind(("127.0.0.1", port + 1))
                    return port
                except OSError:
                    continue


class Swtpm:
    """A software TPM of the test's own (no security: a stand-in for tests)."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.process = None
        self.start()

    def start(self):
        for _ in range(5):
            self.port = free_port_pair()
            self.process = subprocess.Popen(
                ["swtpm", "socket", "--tpm2", "--tpmstate", f"dir={self.dir}", "--flags", "not-need-init,startup-clear",
                 "--server", f"type=tcp,port={self.port},bindaddr=127.0.0.1",
                 "--ctrl", f"type=tcp,port={self.port + 1},bindaddr=127.0.0.1"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.process.poll() is None:
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                    return
                except OSError:
                    time.sleep(0.05)
            self.stop()
        raise RuntimeError("swtpm did not start")

    @property
    def tcti(self) -> str:
        return f"swtpm:host=127.0.0.1,port={self.port}"

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def freeze(self):
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self):
        os.kill(self.process.pid, signal.SIGCONT)


@pytest.fixture
def swtpm(tmp_path, monkeypatch):
    state = tmp_path / "swtpm"
    state.mkdir()
    tpm = Swtpm(state)
    # The process's own TPM and metadata file; tpm-hmac and keepassxc-cli inherit them.
    monkeypatch.setenv("TPM2TOOLS_TCTI", tpm.tcti)
    monkeypatch.setenv("KEEPASSXC_TPM_METADATA", str(tmp_path / "keys.json"))
    monkeypatch.setenv("TSS2_LOG", "all+none")
    yield tpm
    if tpm.process.poll() is None:
        tpm.thaw()  # a test may have left it frozen
    tpm.stop()


@pytest.fixture(scope="session")
def tpm_hmac_path() -> Path:
    path = os.environ.get("TPM_HMAC")
    if path:
        return Path(path)
    subprocess.run(["cargo", "build", "-q", "--locked", "-p", "tpm-hmac", "--manifest-path", str(ROOT / "Cargo.toml")],
                   check=True)
    return ROOT / "target" / "debug" / "tpm-hmac"


@pytest.fixture
def tpm_hmac(tpm_hmac_path, swtpm):
    """Runs tpm-hmac against the test's TPM; returns stdout, fails the test on an error."""

    def run(*args: str, input: str = None) -> str:
        out = subprocess.run([str(tpm_hmac_path), *args], capture_output=True, text=True, input=input)
        assert out.returncode == 0, f"tpm-hmac {' '.join(args)}: {out.stderr}"
        return out.stdout

    return run


@pytest.fixture
def imported_key(tpm_hmac, tmp_path) -> dict:
    secret = tmp_path / "secret.hex"
    secret.write_text(SECRET.hex())
    return json.loads(tpm_hmac("import", "--secret-file", str(secret), "--json"))


def fork(version: str):
    """The fork's keepassxc-cli and keepassxc-tpm-make-db for `version`, or None."""
    build = ROOT / "build" / f"keepassxc-{version}" / "build"
    cli, make_db = build / "src" / "cli" / "keepassxc-cli", build / "src" / "keepassxc-tpm-make-db"
    backend = build / "cargo" / "release" / "libkeepassxc_tpm_backend.so"
    if cli.exists() and make_db.exists() and backend.exists():
        return cli, make_db, backend
    return None


@pytest.fixture(params=FORK_VERSIONS)
def keepassxc(request, monkeypatch):
    """(keepassxc-cli, keepassxc-tpm-make-db) of a fork build; a loud skip when it is not built."""
    found = fork(request.param)
    if found is None:
        pytest.skip(f"SKIP: no KeePassXC {request.param} fork build (tests/keepassxc/build-fork.sh {request.param})")
    cli, make_db, backend = found
    monkeypatch.setenv("KEEPASSXC_TPM_BACKEND", str(backend))
    return cli, make_db


kdbxtool_missing = os.environ.get("KEEPASSXC_TPM_NO_KDBXTOOL")
needs_kdbxtool = pytest.mark.skipif(bool(kdbxtool_missing), reason=f"SKIP: {kdbxtool_missing}")


class StallingProxy:
    """A loopback proxy in front of the TPM that can leave one command without an answer for good
    (as a TPM connection whose response was lost), while later commands get through. tpm2-tss's
    swtpm TCTI opens a connection per command."""

    def __init__(self, upstream_port: int):
        self.stall_next = False
        self.sockets = []
        # swtpm's TCTI uses two ports: commands, and the control channel next to it (never stalled)
        self.port = free_port_pair()
        for offset in (0, 1):
            listener = socket.create_server(("127.0.0.1", self.port + offset))
            self.sockets.append(listener)
            threading.Thread(target=self._accept, args=(listener, upstream_port + offset, offset == 0),
                             daemon=True).start()

    @property
    def tcti(self) -> str:
        return f"swtpm:host=127.0.0.1,port={self.port}"

    def stall_next_command(self):
        self.stall_next = True

    def _accept(self, listener, upstream_port, commands):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            self.sockets.append(client)
            if commands and self.stall_next:
                self.stall_next = False  # read by no one, answered never, closed at the end
                continue
            upstream = socket.create_connection(("127.0.0.1", upstream_port))
            self.sockets.append(upstream)
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()

    @staticmethod
    def _pipe(source, target):
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        for s in (source, target):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        for s in self.sockets:
            s.close()


@pytest.fixture
def stalling_proxy(swtpm):
    proxy = StallingProxy(swtpm.port)
    yield proxy
    proxy.close()
