/*
 * TEST-ONLY. Never shipped, never installed outside a test's Wine prefix.
 *
 * Rust's std (1.78 and later) imports ProcessPrng from bcryptprimitives.dll
 * for its random numbers (HashMap keys). Wine has that export only from
 * 8.13; under Debian's Wine 8.0 a Rust binary then exits 53 before main,
 * printing nothing. tests/support/wine.rs builds this file with mingw
 * (x86_64-w64-mingw32-gcc -shared) and copies it into the test prefix's
 * system32 as bcryptprimitives.dll, so the Windows build starts there.
 *
 * ProcessPrng is documented to always succeed and return TRUE; here it is
 * RtlGenRandom (advapi32's SystemFunction036), Wine's own CSPRNG.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
