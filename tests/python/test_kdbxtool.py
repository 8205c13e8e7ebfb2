"""kdbxtool with TpmHmac, and the same TPM key in the KeePassXC fork: databases made on either
side open on the other, before and after the other side saves them (a new KDF seed, so a new
challenge); a database made with a software twin of the key opens with the TPM key; every
failure raises its own exception and leaves the file as it was."""

import hashlib
import hmac
import json
import subprocess

import pytest

from conftest import SECRET, keepassxc_rule, needs_kdbxtool

pytestmark = needs_kdbxtool

PASSWORD = "correct horse battery staple"


def kdbxtool():
    import kdbxtool
    from kdbxtool.security.kdf import Argon2Config

    return kdbxtool, Argon2Config


class SoftwareTwin:
    """A YubiKey slot in variable-length mode holding SECRET, as KeePassXC drives it (software,
    for tests only)."""

    def challenge_response(self, challenge: bytes):
        from kdbxtool.security.memory import SecureBytes

        return SecureBytes(hmac.new(SECRET, keepassxc_rule(challenge), hashlib.sha1).digest())


def make_database(path, provider, title="From kdbxtool"):
    kx, Argon2Config = kdbxtool()
    db = kx.Database.create(password=PASSWORD, kdf_config=Argon2Config.fast())
    db.root_group.create_entry(title=title, username="alice", password="s3cret")
    db.save(path, challenge_response_provider=provider)


def cli_ls(cli, serial, path, password=PASSWORD):
    return subprocess.run([str(cli), "ls", "--yubikey", f"1:{serial}", str(path)], input=password + "\n",
                          capture_output=True, text=True)


def test_the_provider_satisfies_kdbxtools_protocol(swtpm, imported_key):
    from kdbxtool.security.challenge_response import ChallengeResponseProvider
    from kdbxtool.security.memory import SecureBytes

    from keepassxc_tpm import TpmHmac

    provider = TpmHmac(imported_key["handle"])
    assert isinstance(provider, ChallengeResponseProvider)
    response = provider.challenge_response(bytes(32))
    assert isinstance(response, SecureBytes) and len(response.data) == 20


def test_kdbxtool_database_opens_in_the_fork_and_back(swtpm, imported_key, keepassxc, tmp_path):
    from keepassxc_tpm import TpmHmac

    cli, _ = keepassxc
    path = tmp_path / "kdbxtool.kdbx"
    provider = TpmHmac(imported_key["handle"])
    make_database(path, provider)
    listed = cli_ls(cli, imported_key["serial"], path)
    assert listed.returncode == 0 and "From kdbxtool" in listed.stdout, listed.stderr
    # kdbxtool saves again (a new seed): the fork still opens it.
    kx, _ = kdbxtool()
    db = kx.Database.open(path, password=PASSWORD, challenge_response_provider=provider)
    db.root_group.create_entry(title="Added later")
    db.save()
    listed = cli_ls(cli, imported_key["serial"], path)
    assert listed.returncode == 0 and "Added later" in listed.stdout, listed.stderr
    # Without the TPM key the fork refuses it.
    refused = subprocess.run([str(cli), "ls", str(path)], input=PASSWORD + "\n", capture_output=True, text=True)
    assert refused.returncode != 0


def test_fork_database_opens_in_kdbxtool_and_back(swtpm, imported_key, keepassxc, tmp_path):
    from keepassxc_tpm import TpmHmac

    cli, make_db = keepassxc
    path = tmp_path / "fork.kdbx"
    made = subprocess.run([str(make_db), str(path), f"1:{imported_key['serial']}", "From KeePassXC"],
                          input=PASSWORD + "\n", capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    kx, _ = kdbxtool()
    provider = TpmHmac(imported_key["handle"])
    db = kx.Database.open(path, password=PASSWORD, challenge_response_provider=provider)
    assert "From KeePassXC" in {e.title for e in db.root_group.entries}
    db.root_group.create_entry(title="Saved by kdbxtool")
    db.save()
    listed = cli_ls(cli, imported_key["serial"], path)
    assert listed.returncode == 0, listed.stderr
    assert "From KeePassXC" in listed.stdout and "Saved by kdbxtool" in listed.stdout


def test_a_key_file_twins_database_opens_in_kdbxtool_and_the_fork(swtpm, tpm_hmac, keepassxc, tmp_path):
    """A key kept in a file (no persistent handle), imported from the twin's secret: a database made
    with the software twin opens through TpmHmac(key_file=...) and in the fork by the key file's
    serial, and kdbxtool's re-save (a new seed) opens in the fork too."""
    from keepassxc_tpm import TpmHmac

    cli, _ = keepassxc
    secret = tmp_path / "secret.hex"
    secret.write_text(SECRET.hex())
    key_file = tmp_path / "twin.tss"
    key = json.loads(tpm_hmac("import", "--secret-file", str(secret), "--key-file", str(key_file), "--json"))
    path = tmp_path / "twin.kdbx"
    make_database(path, SoftwareTwin(), title="Made with the twin")
    kx, _ = kdbxtool()
    db = kx.Database.open(path, password=PASSWORD, challenge_response_provider=TpmHmac(key_file=key_file))
    db.root_group.create_entry(title="Saved through the key file")
    db.save()
    listed = cli_ls(cli, key["serial"], path)
    assert listed.returncode == 0, listed.stderr
    assert "Made with the twin" in listed.stdout and "Saved through the key file" in listed.stdout


def test_a_software_twins_database_opens_with_the_tpm_key_and_failures_change_nothing(
        swtpm, imported_key, tpm_hmac, tmp_path):
    import keepassxc_tpm
    from keepassxc_tpm import TpmHmac

    kx, _ = kdbxtool()
    path = tmp_path / "twin.kdbx"
    make_database(path, SoftwareTwin(), title="Made with the twin")
    before = path.read_bytes()
    db = kx.Database.open(path, password=PASSWORD, challenge_response_provider=TpmHmac(imported_key["handle"]))
    assert "Made with the twin" in {e.title for e in db.root_group.entries}

    other = json.loads(tpm_hmac("create", "--json"))
    from kdbxtool.exceptions import AuthenticationError

    with pytest.raises(AuthenticationError):
        kx.Database.open(path, password="wrong password", challenge_response_provider=TpmHmac(imported_key["handle"]))
    # Another TPM key answers, and the database refuses the answer.
    with pytest.raises(AuthenticationError):
        kx.Database.open(path, password=PASSWORD, challenge_response_provider=TpmHmac(other["handle"]))
    pin_file = tmp_path / "pin"
    pin_file.write_text("2468\n")
    secret = tmp_path / "secret.hex"  # written by the imported_key fixture
    pinned = json.loads(tpm_hmac("import", "--secret-file", str(secret), "--pin-file", str(pin_file), "--json"))
    with pytest.raises(keepassxc_tpm.WrongPin):
        kx.Database.open(path, password=PASSWORD, challenge_response_provider=TpmHmac(pinned["handle"], pin="1357"))
    db = kx.Database.open(path, password=PASSWORD, challenge_response_provider=TpmHmac(pinned["handle"], pin="2468"))
    assert "Made with the twin" in {e.title for e in db.root_group.entries}, "the same secret behind a PIN"
    provider = TpmHmac(imported_key["handle"])
    tpm_hmac("delete", "--handle", imported_key["handle"])
    with pytest.raises(keepassxc_tpm.NoSuchKey):
        kx.Database.open(path, password=PASSWORD, challenge_response_provider=provider)
    swtpm.stop()
    with pytest.raises(keepassxc_tpm.NoTpm):
        kx.Database.open(path, password=PASSWORD, challenge_response_provider=provider)
    assert path.read_bytes() == before, "no failure changed the database file"


def test_the_other_padding_rule_twins_kdbxtools_own_yubikey_path(swtpm, imported_key, tmp_path):
    from kdbxtool.testing import MockYubiKey

    from keepassxc_tpm import TpmHmac

    kx, _ = kdbxtool()
    path = tmp_path / "ykman.kdbx"
    # MockYubiKey hashes the challenge as given, as a slot driven by yubikey-manager does.
    make_database(path, MockYubiKey.with_secret(SECRET), title="Made like kdbxtool's YubiKey path")
    provider = TpmHmac(imported_key["handle"], padding="yubikey-manager")
    db = kx.Database.open(path, password=PASSWORD, challenge_response_provider=provider)
    assert "Made like kdbxtool's YubiKey path" in {e.title for e in db.root_group.entries}
