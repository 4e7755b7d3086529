/*
 * TEST-ONLY. A Windows program that plays a with-secrets.exe bridge helper
 * gone wrong, so that tests/bridge.rs can show what the Linux build does
 * when its helper, under Wine, misbehaves. The Linux build appends `bridge`
 * to the helper's command line; this program ignores it.
 *
 *   hello VERSION PROTOCOL   reads the hello request, answers it as
 *                            with-secrets VERSION speaking PROTOCOL, then
 *                            reads its input to the end.
 *   hang FILE                starts `sleep FILE` (this program again, as a
 *                            child of its own), creates FILE to say so, and
 *                            never answers.
 *   sleep FILE               sleeps forever. FILE is only there to be found
 *                            in the process list.
 *
 * Answers end in \r\n, as a Windows console program's lines may.
 */
#include <windows.h>
#include <stdio.h>
#include <string.h>

static void drain(void)
{
    char buffer[4096];
    while (fgets(buffer, sizeof buffer, stdin)) {
    }
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "hello") == 0) {
        char line[4096];
        if (!fgets(line, sizeof line, stdin))
            return 1;
        printf("{\"protocol\":%s,\"version\":\"%s\",\"store\":\"windows\"}\r\n",
               argv[3], argv[2]);
        fflush(stdout);
        drain();
        return 0;
    }
    if (argc >= 3 && strcmp(argv[1], "hang") == 0) {
        char command[MAX_PATH + 600];
        char self[MAX_PATH];
        GetModuleFileNameA(NULL, self, sizeof self);
        snprintf(command, sizeof command, "\"%s\" sleep %s", self, argv[2]);
        STARTUPINFOA startup = {sizeof startup};
        PROCESS_INFORMATION child;
        if (!CreateProcessA(NULL, command, NULL, NULL, FALSE, 0, NULL, NULL, &startup, &child)) {
            fprintf(stderr, "CreateProcess failed: %lu\n", GetLastError());
            return 2;
        }
        HANDLE file = CreateFileA(argv[2], GENERIC_WRITE, 0, NULL, CREATE_NEW, 0, NULL);
        if (file == INVALID_HANDLE_VALUE) {
            fprintf(stderr, "cannot create %s: %lu\n", argv[2], GetLastError());
            return 2;
        }
        CloseHandle(file);
        Sleep(INFINITE);
    }
    if (argc >= 3 && strcmp(argv[1], "sleep") == 0)
        Sleep(INFINITE);
    fprintf(stderr, "usage: bridge-impostor hello VERSION PROTOCOL | hang FILE | sleep FILE\n");
    return 2;
}
