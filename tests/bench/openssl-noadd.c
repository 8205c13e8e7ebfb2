/*
 * Profiling aid for tests/bench/profile.sh (never shipped): an LD_PRELOAD constructor that tells
 * OpenSSL 3 not to load its legacy cipher/digest name tables, in our own binaries only.
 *
 * Why: tpm2-tss 3.2's ESYS makes a new OSSL_LIB_CTX for every hash, HMAC, cipher and random
 * number it needs, and every new library context copies all legacy algorithm names
 * (OBJ_NAME_do_all) before its first fetch. With the tables empty that copy is free. The
 * numbers with and without this show how much of a challenge is that copy.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <openssl/crypto.h>

__attribute__((constructor)) static void keepassxc_tpm_bench_noadd(void)
{
    if (strncmp(program_invocation_short_name, "keepassxc-tpm", 13) != 0 &&
        strncmp(program_invocation_short_name, "tpm-hmac", 8) != 0) {
        return; /* not swtpm, python or tpm2-tools */
    }
    OPENSSL_init_crypto(OPENSSL_INIT_NO_ADD_ALL_CIPHERS | OPENSSL_INIT_NO_ADD_ALL_DIGESTS, NULL);
}
