/*
 * bcryptprimitives.dll for wine 8.0 (Debian 12), which lacks ProcessPrng: Rust's standard library
 * (1.78 and later) imports it on Windows. Forwarded to RtlGenRandom (advapi32's SystemFunction036),
 * which wine has. Test stand-in only; real Windows has its own.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk)) {
            return FALSE;
        }
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
