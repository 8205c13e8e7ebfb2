/*
 * A test double of Windows' TPM Base Services (tbs.dll) for running Windows builds under wine on
 * this Debian machine, where wine's own tbs.dll is stubs only. It behaves as TBS is documented to
 * where the tests rely on it:
 *   - each context (Tbsi_Context_Create) is its own connection to the TPM (one TCP connection to
 *     swtpm's data port, KEEPASSXC_TPM_TBS_PORT on 127.0.0.1);
 *   - Tbsip_Submit_Command passes a command on and returns the TPM's response;
 *   - a command Windows blocks for the user "succeeds" with TPM_E_COMMAND_BLOCKED (0x80280400) as
 *     the response code (the blocked command codes: KEEPASSXC_TPM_TBS_BLOCK, e.g. "0x120,0x12A");
 *   - closing a context flushes the transient objects and sessions it left (TBS virtualises them
 *     per context);
 *   - Tbsi_GetDeviceInfo reports a TPM 2.0 (interface type 4, an emulator) while the port is set.
 * Test stand-in only: it gives no security.
 */
#include <winsock2.h>
#include <windows.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The codes are winerror.h's (TBS_SUCCESS, TBS_E_*), and TPM_E_COMMAND_BLOCKED where mingw's has it. */
#ifndef TPM_E_COMMAND_BLOCKED
#define TPM_E_COMMAND_BLOCKED 0x80280400u
#endif
typedef UINT32 TBS_RESULT;
typedef void *TBS_HCONTEXT;

struct context {
    SOCKET socket;
};

static int send_all(SOCKET s, const BYTE *data, int length)
{
    while (length > 0) {
        int sent = send(s, (const char *)data, length, 0);
        if (sent <= 0) {
            return 0;
        }
        data += sent;
        length -= sent;
    }
    return 1;
}

static int receive_all(SOCKET s, BYTE *data, int length)
{
    while (length > 0) {
        int got = recv(s, (char *)data, length, 0);
        if (got <= 0) {
            return 0;
        }
        data += got;
        length -= got;
    }
    return 1;
}

static UINT32 be32(const BYTE *p)
{
    return ((UINT32)p[0] << 24) | ((UINT32)p[1] << 16) | ((UINT32)p[2] << 8) | p[3];
}

static void put_be32(BYTE *p, UINT32 v)
{
    p[0] = (BYTE)(v >> 24);
    p[1] = (BYTE)(v >> 16);
    p[2] = (BYTE)(v >> 8);
    p[3] = (BYTE)v;
}

/* One command and its response on the context's connection; 0 when the connection failed. */
static int transact(SOCKET s, const BYTE *command, UINT32 length, BYTE *response, UINT32 capacity, UINT32 *got)
{
    if (!send_all(s, command, (int)length) || capacity < 10 || !receive_all(s, response, 10)) {
        return 0;
    }
    UINT32 size = be32(response + 2);
    if (size < 10 || size > capacity || !receive_all(s, response + 10, (int)(size - 10))) {
        return 0;
    }
    *got = size;
    return 1;
}

/* The process's environment as Windows keeps it (what SetEnvironmentVariable changes; the C
 * runtime's getenv keeps a copy of its own): `name`'s value in `buffer`, or NULL. */
static const char *setting(const char *name, char *buffer, DWORD size)
{
    DWORD length = GetEnvironmentVariableA(name, buffer, size);
    return (length == 0 || length >= size) ? NULL : buffer;
}

static int blocked(UINT32 code)
{
    char buffer[512];
    const char *list = setting("KEEPASSXC_TPM_TBS_BLOCK", buffer, sizeof buffer);
    while (list && *list) {
        char *end = NULL;
        unsigned long value = strtoul(list, &end, 0);
        if (end == list) {
            return 0;
        }
        if (value == code) {
            return 1;
        }
        list = (*end == ',') ? end + 1 : end;
    }
    return 0;
}

/* Flushes the transient objects (0x80), loaded HMAC (0x02) and policy (0x03) sessions. */
static void flush_all(SOCKET s)
{
    static const UINT32 ranges[] = {0x80000000u, 0x02000000u, 0x03000000u};
    for (int r = 0; r < 3; r++) {
        BYTE command[22] = {0x80, 0x01, 0, 0, 0, 22, 0, 0, 0x01, 0x7A, 0, 0, 0, 1};
        put_be32(command + 14, ranges[r]);
        put_be32(command + 18, 64);
        BYTE response[4096];
        UINT32 got = 0;
        if (!transact(s, command, sizeof command, response, sizeof response, &got) || got < 19
            || be32(response + 6) != 0) {
            continue;
        }
        UINT32 count = be32(response + 15);
        for (UINT32 i = 0; i < count && 19 + 4 * i + 4 <= got; i++) {
            BYTE flush[14] = {0x80, 0x01, 0, 0, 0, 14, 0, 0, 0x01, 0x65};
            memcpy(flush + 10, response + 19 + 4 * i, 4);
            BYTE answer[64];
            UINT32 ignored = 0;
            transact(s, flush, sizeof flush, answer, sizeof answer, &ignored);
        }
    }
}

__declspec(dllexport) TBS_RESULT WINAPI Tbsi_Context_Create(const void *params, TBS_HCONTEXT *handle)
{
    if (!params || !handle) {
        return TBS_E_BAD_PARAMETER;
    }
    char buffer[16];
    const char *port = setting("KEEPASSXC_TPM_TBS_PORT", buffer, sizeof buffer);
    if (!port) {
        return TBS_E_TPM_NOT_FOUND;
    }
    WSADATA wsa;
    if (WSAStartup(MAKEWORD(2, 2), &wsa) != 0) {
        return TBS_E_INTERNAL_ERROR;
    }
    SOCKET s = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    struct sockaddr_in address = {0};
    address.sin_family = AF_INET;
    address.sin_port = htons((u_short)atoi(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (s == INVALID_SOCKET || connect(s, (struct sockaddr *)&address, sizeof address) != 0) {
        if (s != INVALID_SOCKET) {
            closesocket(s);
        }
        return TBS_E_TPM_NOT_FOUND;
    }
    struct context *context = calloc(1, sizeof *context);
    if (!context) {
        closesocket(s);
        return TBS_E_INTERNAL_ERROR;
    }
    context->socket = s;
    *handle = context;
    return TBS_SUCCESS;
}

__declspec(dllexport) TBS_RESULT WINAPI Tbsip_Submit_Command(TBS_HCONTEXT handle, UINT32 locality, UINT32 priority,
                                                             const BYTE *command, UINT32 length, BYTE *result,
                                                             UINT32 *result_length)
{
    (void)locality;
    (void)priority;
    struct context *context = handle;
    if (!context || !command || length < 10 || !result || !result_length) {
        return TBS_E_BAD_PARAMETER;
    }
    if (blocked(be32(command + 6))) {
        if (*result_length < 10) {
            return TBS_E_INSUFFICIENT_BUFFER;
        }
        BYTE answer[10] = {0x80, 0x01, 0, 0, 0, 10};
        put_be32(answer + 6, TPM_E_COMMAND_BLOCKED);
        memcpy(result, answer, 10);
        *result_length = 10;
        return TBS_SUCCESS;
    }
    UINT32 got = 0;
    if (!transact(context->socket, command, length, result, *result_length, &got)) {
        return TBS_E_INTERNAL_ERROR;
    }
    *result_length = got;
    return TBS_SUCCESS;
}

__declspec(dllexport) TBS_RESULT WINAPI Tbsip_Context_Close(TBS_HCONTEXT handle)
{
    struct context *context = handle;
    if (!context) {
        return TBS_E_BAD_PARAMETER;
    }
    flush_all(context->socket);
    closesocket(context->socket);
    free(context);
    return TBS_SUCCESS;
}

/* TPM_DEVICE_INFO (tbs.h) */
struct device_info {
    UINT32 structVersion;
    UINT32 tpmVersion;
    UINT32 tpmInterfaceType;
    UINT32 tpmImpRevision;
};

__declspec(dllexport) TBS_RESULT WINAPI Tbsi_GetDeviceInfo(UINT32 size, void *info)
{
    if (!info || size < sizeof(struct device_info)) {
        return TBS_E_BAD_PARAMETER;
    }
    char buffer[16];
    if (!setting("KEEPASSXC_TPM_TBS_PORT", buffer, sizeof buffer)) {
        return TBS_E_TPM_NOT_FOUND;
    }
    struct device_info device = {1, 2, 4, 0};
    memcpy(info, &device, sizeof device);
    return TBS_SUCCESS;
}
