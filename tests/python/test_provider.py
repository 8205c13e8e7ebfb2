"""keepassxc_tpm without kdbxtool: responses against independent HMACs for both padding rules,
every form of key handle, PINs, errors as exceptions, the listing, and the GIL released."""

import subprocess
import sys
import threading
import time

import pytest

import keepassxc_tpm
from keepassxc_tpm import TpmHmac
from conftest import SECRET, hmac_sha1, keepassxc_rule, yubikey_manager_rule

SEEDS_ENDING_IN_0X20 = [bytes(range(1, 31)) + b"\x20\x20", bytes(range(40, 71)) + b"\x20", bytes(31) + b"\x20"]


def data(response) -> bytes:
    return getattr(response, "data", response)


def test_both_padding_rules_match_independent_hmacs(swtpm, imported_key):
    keepassxc = TpmHmac(imported_key["handle"])
    ykman = TpmHmac(imported_key["handle"], padding="yubikey-manager")
    plain_seed = bytes(range(100, 132))
    for seed in SEEDS_ENDING_IN_0X20 + [plain_seed, b"", b"\x00" * 32]:
        assert data(keepassxc.challenge_response(seed)) == hmac_sha1(SECRET, keepassxc_rule(seed)), seed.hex()
        assert data(ykman.challenge_response(seed)) == hmac_sha1(SECRET, yubikey_manager_rule(seed)), seed.hex()
    for seed in SEEDS_ENDING_IN_0X20:
        assert data(keepassxc.challenge_response(seed)) != data(ykman.challenge_response(seed)), "the rules differ here"
    assert data(keepassxc.challenge_response(plain_seed)) == data(ykman.challenge_response(plain_seed))
    with pytest.raises(ValueError, match="padding"):
        TpmHmac(imported_key["handle"], padding="pkcs7")
    with pytest.raises(keepassxc_tpm.BadChallenge, match="at most 64"):
        keepassxc.challenge_response(bytes(65))


def test_every_form_of_key_handle(swtpm, imported_key, tpm_hmac):
    serial = imported_key["serial"]
    expected = data(TpmHmac(serial).challenge_response(b"x" * 32))
    for form in (serial, imported_key["handle"], str(serial), imported_key["handle"].upper().replace("X", "x"), None):
        provider = TpmHmac(form)
        assert provider.key_handle == serial
        assert data(provider.challenge_response(b"x" * 32)) == expected, form
    tpm_hmac("create")
    with pytest.raises(keepassxc_tpm.AmbiguousKey, match="several HMAC keys"):
        TpmHmac()
    with pytest.raises(TypeError):
        TpmHmac(1.5)


def test_the_seeds_own_example_names_the_storage_root_key(swtpm, imported_key):
    # The request's example used 0x81000001, which is the storage root key, not an HMAC key.
    with pytest.raises(keepassxc_tpm.NotHmacKey) as raised:
        TpmHmac(key_handle=0x81000001)
    message = str(raised.value)
    assert "0x81000001" in message and "probably the SRK" in message and "list_keys()" in message, message
    assert "\n" not in message
    with pytest.raises(keepassxc_tpm.NoSuchKey, match="no key at 0x81000155"):
        TpmHmac(key_handle=0x81000155)
    with pytest.raises(keepassxc_tpm.NoSuchKey, match="not a persistent TPM handle"):
        TpmHmac(key_handle="hello")


def test_no_key_at_all(swtpm):
    with pytest.raises(keepassxc_tpm.NoSuchKey, match="no HMAC key in this TPM"):
        TpmHmac()


def test_list_keys_has_the_fields_of_tpm_hmac_list_json(swtpm, imported_key, tpm_hmac):
    import json

    assert keepassxc_tpm.list_keys() == json.loads(tpm_hmac("list", "--json"))
    assert keepassxc_tpm.list_keys(tcti=swtpm.tcti)[0] == imported_key


def test_pins_as_text_bytes_or_a_callable(swtpm, tpm_hmac, tmp_path):
    pin_file = tmp_path / "pin"
    pin_file.write_text("2468\n")
    key = __import__("json").loads(
        tpm_hmac("import", "--secret-file", str(_secret_file(tmp_path)), "--pin-file", str(pin_file), "--json"))
    expected = hmac_sha1(SECRET, keepassxc_rule(b"p" * 32))
    assert data(TpmHmac(key["handle"], pin="2468").challenge_response(b"p" * 32)) == expected
    assert data(TpmHmac(key["handle"], pin=b"2468").challenge_response(b"p" * 32)) == expected
    asked = []
    provider = TpmHmac(key["handle"], pin=lambda: asked.append(1) or "2468")
    assert data(provider.challenge_response(b"p" * 32)) == expected
    assert data(provider.challenge_response(b"p" * 32)) == expected
    assert len(asked) == 2, "asked each time it is needed, never kept"
    with pytest.raises(keepassxc_tpm.PinRequired, match="pin="):
        TpmHmac(key["handle"]).challenge_response(b"p" * 32)
    with pytest.raises(keepassxc_tpm.WrongPin, match="tries? left"):
        TpmHmac(key["handle"], pin="1357").challenge_response(b"p" * 32)
    # A key without a PIN never asks.
    plain = __import__("json").loads(tpm_hmac("import", "--secret-file", str(_secret_file(tmp_path)), "--json"))
    never = TpmHmac(plain["handle"], pin=lambda: pytest.fail("asked for a PIN the key does not have"))
    assert data(never.challenge_response(b"p" * 32)) == expected


def _secret_file(tmp_path):
    path = tmp_path / "secret.hex"
    path.write_text(SECRET.hex())
    return path


def test_no_tpm_and_a_deleted_key_raise(swtpm, imported_key, tpm_hmac):
    provider = TpmHmac(imported_key["handle"])
    tpm_hmac("delete", "--handle", imported_key["handle"])
    with pytest.raises(keepassxc_tpm.NoSuchKey, match="no key at"):
        provider.challenge_response(b"d" * 32)
    swtpm.stop()
    with pytest.raises(keepassxc_tpm.NoTpm, match="no TPM reachable"):
        TpmHmac(0x81000100)
    with pytest.raises(keepassxc_tpm.NoTpm):
        keepassxc_tpm.list_keys()
    assert issubclass(keepassxc_tpm.NoTpm, keepassxc_tpm.TpmError)


def test_the_gil_is_released_while_the_tpm_works(swtpm, imported_key):
    provider = TpmHmac(imported_key["handle"])
    swtpm.freeze()
    result = {}
    worker = threading.Thread(target=lambda: result.setdefault("r", provider.challenge_response(b"g" * 32)))
    worker.start()
    ticks = 0
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        ticks += 1  # runs only while the worker does not hold the GIL
    swtpm.thaw()
    worker.join(15)
    assert ticks > 1000, f"the main thread ran only {ticks} times while the TPM was frozen"
    assert data(result["r"]) == hmac_sha1(SECRET, keepassxc_rule(b"g" * 32))


def test_importing_the_module_does_not_import_kdbxtool():
    code = "import sys, keepassxc_tpm; assert 'kdbxtool' not in sys.modules, 'kdbxtool imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def _lockout_counter(swtpm) -> int:
    out = subprocess.run(["tpm2_getcap", "properties-variable"], capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "TPM2TOOLS_TCTI": swtpm.tcti})
    return int(next(l for l in out.stdout.splitlines() if l.startswith("TPM2_PT_LOCKOUT_COUNTER:")).split()[-1], 16)


def _pin_key(tpm_hmac, tmp_path) -> dict:
    pin_file = tmp_path / "pin"
    pin_file.write_text("2468\n")
    return __import__("json").loads(
        tpm_hmac("import", "--secret-file", str(_secret_file(tmp_path)), "--pin-file", str(pin_file), "--json"))


def test_a_refused_pin_is_wiped_and_never_sent_again(swtpm, tpm_hmac, tmp_path):
    key = _pin_key(tpm_hmac, tmp_path)
    provider = TpmHmac(key["handle"], pin="1357")
    kept = provider._pin_value
    with pytest.raises(keepassxc_tpm.WrongPin, match="tries? left"):
        provider.challenge_response(b"p" * 32)
    assert _lockout_counter(swtpm) == 1
    assert kept == bytearray(4), "the refused PIN is wiped"
    for _ in range(3):  # kdbxtool challenges again on every save
        with pytest.raises(keepassxc_tpm.PinRequired):
            provider.challenge_response(b"p" * 32)
    assert _lockout_counter(swtpm) == 1, "one wrong PIN, one try"


def test_an_empty_pin_is_no_pin_and_costs_no_try(swtpm, tpm_hmac, tmp_path):
    key = _pin_key(tpm_hmac, tmp_path)
    # Used correctly once: libtpms answers the first DA-protected authorisation after its start
    # with TPM_RC_RETRY and counts nothing, so only now would a wrong one show in the counter.
    TpmHmac(key["handle"], pin="2468").challenge_response(b"p" * 32)
    for pin in ["", b"", "\n", lambda: ""]:
        with pytest.raises(keepassxc_tpm.PinRequired, match="no PIN was entered"):
            TpmHmac(key["handle"], pin=pin).challenge_response(b"p" * 32)
    assert _lockout_counter(swtpm) == 0


def test_a_key_replaced_under_a_kept_provider_costs_no_try(swtpm, imported_key, tpm_hmac, tmp_path):
    # kdbxtool keeps its provider for as long as the database is open, and challenges on every save.
    provider = TpmHmac(imported_key["handle"])
    seed = b"s" * 32
    assert data(provider.challenge_response(seed)) == hmac_sha1(SECRET, keepassxc_rule(seed))
    # The owner deletes the key and makes one with a PIN: it takes the first free handle, the same.
    tpm_hmac("delete", "--handle", imported_key["handle"])
    key = _pin_key(tpm_hmac, tmp_path)
    assert key["handle"] == imported_key["handle"]
    TpmHmac(key["handle"], pin="2468").challenge_response(seed)  # used correctly once (see above)
    assert _lockout_counter(swtpm) == 0
    for _ in range(3):
        with pytest.raises(keepassxc_tpm.PinRequired):
            provider.challenge_response(seed)
    assert _lockout_counter(swtpm) == 0, "the kept provider spent no dictionary-attack try"


def test_one_hang_costs_one_timeout(swtpm, stalling_proxy, tpm_hmac, tmp_path):
    key = _pin_key(tpm_hmac, tmp_path)  # a PIN key: its challenges take tpm2-tss's path
    expected = hmac_sha1(SECRET, keepassxc_rule(b"h" * 32))
    provider = TpmHmac(key["handle"], tcti=stalling_proxy.tcti, pin="2468")
    assert data(provider.challenge_response(b"h" * 32)) == expected
    stalling_proxy.stall_next_command()
    started = time.monotonic()
    with pytest.raises(keepassxc_tpm.NoTpm, match="did not answer within 10 s"):
        provider.challenge_response(b"h" * 32)
    assert time.monotonic() - started < 15
    started = time.monotonic()
    assert data(provider.challenge_response(b"h" * 32)) == expected, "a new connection answers"
    assert time.monotonic() - started < 5, "no second wait behind the stuck connection"


def test_a_key_file_is_found_by_its_file(swtpm, tpm_hmac, tmp_path):
    import json

    key_file = tmp_path / "twin.tss"
    key = json.loads(tpm_hmac("import", "--secret-file", str(_secret_file(tmp_path)), "--key-file", str(key_file),
                              "--json"))
    assert key["kept_in"] == "file"
    provider = TpmHmac(key_file=key_file)
    assert provider.key_handle == key["serial"]
    assert data(provider.challenge_response(b"\x01\x02")) == hmac_sha1(SECRET, keepassxc_rule(b"\x01\x02"))
    assert data(TpmHmac(key["handle"]).challenge_response(b"x")) == data(provider.challenge_response(b"x"))
    with pytest.raises(TypeError):
        TpmHmac(key["handle"], key_file=key_file)
    with pytest.raises(keepassxc_tpm.MetadataError, match="cannot be used"):
        TpmHmac(key_file=tmp_path / "missing.tss")
    other = tmp_path / "other.tss"
    other.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    other.chmod(0o600)
    with pytest.raises(keepassxc_tpm.MetadataError, match="not a TSS2 PRIVATE KEY"):
        TpmHmac(key_file=other)
