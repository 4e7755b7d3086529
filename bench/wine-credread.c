/*
 * How long one CredReadW takes, and what threads change, in the prefix that
 * bench/wsl-bridge leaves in target/bench/wsl-bridge (its 50 items of service
 * bench-50: user-50 at bench-50, the others at user-I@bench-50). Run it after
 * that script, in the same prefix:
 *
 *   x86_64-w64-mingw32-gcc -O2 -o target/bench/wine-credread.exe \
 *       bench/wine-credread.c -ladvapi32
 *   WINEPREFIX=$PWD/target/bench/wsl-bridge/prefix WINEDEBUG=-all \
 *       wine target/bench/wine-credread.exe
 */
#include <windows.h>
#include <wincred.h>
#include <stdio.h>
#include <wchar.h>

static int threads;

static double now_ms(void)
{
    LARGE_INTEGER frequency, counter;
    QueryPerformanceFrequency(&frequency);
    QueryPerformanceCounter(&counter);
    return (double)counter.QuadPart * 1e3 / (double)frequency.QuadPart;
}

static int read_one(const wchar_t *target)
{
    PCREDENTIALW credential;
    if (!CredReadW(target, CRED_TYPE_GENERIC, 0, &credential))
        return 0;
    CredFree(credential);
    return 1;
}

/* Reads user-I@bench-50 for every I in 1..49 that is `first` mod `threads`. */
static DWORD WINAPI read_share(LPVOID first)
{
    wchar_t target[64];
    for (int i = 1 + (int)(INT_PTR)first; i < 50; i += threads) {
        swprintf(target, 64, L"user-%d@bench-50", i);
        if (!read_one(target))
            fprintf(stderr, "no item %ls\n", target);
    }
    return 0;
}

int main(void)
{
    const int calls = 1000;
    double start = now_ms();
    int found = 0;
    for (int i = 0; i < calls; i++)
        found += read_one(L"bench-50");
    printf("an item that exists:  %.3f ms per CredReadW (%d of %d found)\n",
           (now_ms() - start) / calls, found, calls);
    start = now_ms();
    for (int i = 0; i < calls; i++)
        read_one(L"no-such-item");
    printf("an item that is not:  %.3f ms per CredReadW\n", (now_ms() - start) / calls);

    for (threads = 1; threads <= 4; threads *= 2) {
        HANDLE handles[4];
        start = now_ms();
        for (int t = 0; t < threads; t++)
            handles[t] = CreateThread(NULL, 0, read_share, (LPVOID)(INT_PTR)t, 0, NULL);
        WaitForMultipleObjects(threads, handles, TRUE, INFINITE);
        printf("49 distinct items on %d thread%s: %.1f ms\n", threads, threads == 1 ? "" : "s",
               now_ms() - start);
    }
    return 0;
}
