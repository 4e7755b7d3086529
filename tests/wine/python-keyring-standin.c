/*
 * TEST-ONLY STAND-IN for Python's `keyring get/set/delete` on Windows.
 *
 * No CPython for Windows can be fetched on the test machines, so this
 * program makes exactly the advapi32 calls that keyring 25.7's
 * keyring/backends/Windows.py makes through pywin32-ctypes' win32cred, with
 * the same fields, to show that with-secrets and Python's keyring read each
 * other's items. It is a transcription of that file, not Python itself:
 *
 *   get SERVICE USERNAME         get_password: CredRead(SERVICE); if absent or
 *                                its UserName differs, CredRead(USERNAME@SERVICE).
 *                                Prints the value (UTF-16 blob as UTF-8; a blob
 *                                that is not valid UTF-16 printed as is, as
 *                                Python falls back to UTF-8); exit 1 if none.
 *   set SERVICE USERNAME VALUE   set_password: if SERVICE exists, re-save it as
 *                                ITS_USERNAME@SERVICE; then write SERVICE with
 *                                UserName USERNAME.
 *   delete SERVICE USERNAME      delete_password: delete SERVICE and
 *                                USERNAME@SERVICE where UserName is USERNAME;
 *                                exit 1 if neither was.
 *   count SERVICE                (test helper, not Python's) the number of
 *                                generic credentials whose target is SERVICE or
 *                                ends in @SERVICE or .SERVICE, case-insensitive;
 *                                exit 2 if the list would not hold still (below).
 *   raw TARGET USERNAME VALUE    (test helper, not Python's) writes VALUE as raw
 *                                UTF-8 at TARGET with an empty comment: an item
 *                                as with-secrets before 0.2 wrote it.
 *
 * Every item: Type CRED_TYPE_GENERIC, Persist CRED_PERSIST_ENTERPRISE,
 * Comment "Stored using python-keyring", CredentialBlob the value in UTF-16LE
 * without a terminator. Arguments arrive as UTF-16 (wmain), values print as
 * UTF-8.
 *
 * `count` does not call CredEnumerateW: the tests of one process share one
 * Wine prefix and write and delete their own credentials in parallel, and
 * Wine's CredEnumerateW is not safe against that. It walks the registry key
 * below twice, once to count and size the items and once to copy them into
 * a buffer sized by the first walk: an item added in between is written past
 * that buffer, and items added or removed during a walk shift the indexes it
 * reads by, so it skips or repeats items. (CI once saw `count` exit 1 with no
 * output; with other processes writing, it crashed with a page fault or
 * answered 0 for an item that was there, 22 times in 98.)
 *
 * Instead `count` reads only the names of the subkeys of that key (Wine
 * names each "Generic: TARGET", every `\` of TARGET made `_`), one
 * RegEnumKeyExW at a time into a buffer it grows as needed, so nothing is
 * sized in advance. One walk is no snapshot either: a change below the index
 * it has reached shifts the rest, skipping or repeating a name. So it repeats
 * whole walks until two in a row give the same list, and counts in that one.
 * The items of SERVICE do not change while it counts (each test changes only
 * its own items, and not while it counts them); a walk that skipped or
 * repeated one of them differs from the next unless that one was thrown off
 * the same way by changes that also left every other name as it was. After
 * 100 walks without two alike it gives up (exit 2, saying so).
 */
#include <windows.h>
#include <wincred.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

static const wchar_t *COMMENT = L"Stored using python-keyring";

static wchar_t *compound(const wchar_t *username, const wchar_t *service)
{
    size_t len = wcslen(username) + 1 + wcslen(service) + 1;
    wchar_t *name = malloc(len * sizeof(wchar_t));
    swprintf(name, len, L"%ls@%ls", username, service);
    return name;
}

/* CredRead; NULL when absent (winerror 1168), exit 2 on any other error. */
static PCREDENTIALW read_credential(const wchar_t *target)
{
    PCREDENTIALW cred = NULL;
    if (!CredReadW(target, CRED_TYPE_GENERIC, 0, &cred)) {
        DWORD err = GetLastError();
        if (err == ERROR_NOT_FOUND)
            return NULL;
        fprintf(stderr, "CredReadW failed: %lu\n", err);
        exit(2);
    }
    return cred;
}

static void write_credential(const wchar_t *target, const wchar_t *username,
                             const wchar_t *comment, BYTE *blob, DWORD size)
{
    CREDENTIALW cred = {0};
    cred.Type = CRED_TYPE_GENERIC;
    cred.TargetName = (LPWSTR)target;
    cred.UserName = (LPWSTR)username;
    cred.Comment = (LPWSTR)comment;
    cred.CredentialBlob = blob;
    cred.CredentialBlobSize = size;
    cred.Persist = CRED_PERSIST_ENTERPRISE;
    if (!CredWriteW(&cred, 0)) {
        fprintf(stderr, "CredWriteW failed: %lu\n", GetLastError());
        exit(2);
    }
}

/* The value as Python's DecodingCredential.value gives it, printed as UTF-8. */
static void print_value(PCREDENTIALW cred)
{
    DWORD size = cred->CredentialBlobSize;
    if (size % 2 == 0) {
        int units = (int)(size / 2);
        int len = WideCharToMultiByte(CP_UTF8, WC_ERR_INVALID_CHARS,
                                      (LPCWCH)cred->CredentialBlob, units, NULL, 0, NULL, NULL);
        if (len > 0 || units == 0) {
            char *text = malloc(len + 1);
            WideCharToMultiByte(CP_UTF8, 0, (LPCWCH)cred->CredentialBlob, units, text, len,
                                NULL, NULL);
            fwrite(text, 1, len, stdout);
            return;
        }
    }
    fwrite(cred->CredentialBlob, 1, size, stdout);
}

static int get(const wchar_t *service, const wchar_t *username)
{
    PCREDENTIALW res = read_credential(service);
    if (!res || wcscmp(res->UserName ? res->UserName : L"", username) != 0) {
        if (res)
            CredFree(res);
        res = read_credential(compound(username, service));
    }
    if (!res)
        return 1;
    print_value(res);
    CredFree(res);
    return 0;
}

static int set(const wchar_t *service, const wchar_t *username, const wchar_t *value)
{
    PCREDENTIALW existing = read_credential(service);
    if (existing) {
        /* Python decodes the old value and writes it anew as UTF-16; a
         * UTF-16 blob is copied as it is, which is the same bytes. */
        const wchar_t *existing_username = existing->UserName ? existing->UserName : L"";
        write_credential(compound(existing_username, service), existing_username, COMMENT,
                         existing->CredentialBlob, existing->CredentialBlobSize);
        CredFree(existing);
    }
    write_credential(service, username, COMMENT, (BYTE *)value,
                     (DWORD)(wcslen(value) * sizeof(wchar_t)));
    return 0;
}

static int delete(const wchar_t *service, const wchar_t *username)
{
    const wchar_t *targets[2] = {service, compound(username, service)};
    int deleted = 0;
    for (int i = 0; i < 2; i++) {
        PCREDENTIALW existing = read_credential(targets[i]);
        if (existing && wcscmp(existing->UserName ? existing->UserName : L"", username) == 0) {
            deleted = 1;
            if (!CredDeleteW(targets[i], CRED_TYPE_GENERIC, 0) &&
                GetLastError() != ERROR_NOT_FOUND) {
                fprintf(stderr, "CredDeleteW failed: %lu\n", GetLastError());
                return 2;
            }
        }
        if (existing)
            CredFree(existing);
    }
    return deleted ? 0 : 1;
}

static int ends_with(const wchar_t *text, wchar_t sep, const wchar_t *service)
{
    size_t t = wcslen(text), s = wcslen(service);
    return t > s && text[t - s - 1] == sep && _wcsicmp(text + t - s, service) == 0;
}

/* POINTER, or exit 2 saying why when an allocation failed. */
static void *checked(void *pointer)
{
    if (!pointer) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return pointer;
}

/* Where Wine keeps the credentials of the user: one subkey each. */
static const wchar_t *CREDENTIAL_KEY = L"Software\\Wine\\Credential Manager";
static const wchar_t *GENERIC_PREFIX = L"Generic: ";

/* How many walks of the key `count` makes before it gives up. */
#define WALKS 100

/* The subkey names of KEY at the time of one walk, each ended by a NUL, in a
 * buffer of *LEN wide characters (freed by the caller). Exit 2 on an error. */
static wchar_t *walk(HKEY key, size_t *len)
{
    static wchar_t name[32768];
    size_t cap = 4096, used = 0;
    wchar_t *list = checked(malloc(cap * sizeof(wchar_t)));
    for (DWORD index = 0;; index++) {
        DWORD name_len = sizeof(name) / sizeof(name[0]);
        LONG err = RegEnumKeyExW(key, index, name, &name_len, NULL, NULL, NULL, NULL);
        if (err == ERROR_NO_MORE_ITEMS)
            break;
        if (err != ERROR_SUCCESS) {
            fprintf(stderr, "RegEnumKeyExW failed: %ld\n", err);
            exit(2);
        }
        while (used + name_len + 1 > cap) {
            cap *= 2;
            list = checked(realloc(list, cap * sizeof(wchar_t)));
        }
        memcpy(list + used, name, name_len * sizeof(wchar_t));
        used += name_len;
        list[used++] = L'\0';
    }
    *len = used;
    return list;
}

static int count(const wchar_t *service)
{
    HKEY key;
    LONG err = RegOpenKeyExW(HKEY_CURRENT_USER, CREDENTIAL_KEY, 0, KEY_ENUMERATE_SUB_KEYS, &key);
    if (err == ERROR_FILE_NOT_FOUND) {
        printf("0\n");
        return 0;
    }
    if (err != ERROR_SUCCESS) {
        fprintf(stderr, "RegOpenKeyExW failed: %ld\n", err);
        return 2;
    }
    size_t len, previous_len;
    wchar_t *list = walk(key, &len), *previous = NULL;
    int walks = 1;
    do {
        free(previous);
        if (walks == WALKS) {
            fprintf(stderr, "count: the credentials kept changing over %d walks of HKCU\\%ls\n",
                    WALKS, CREDENTIAL_KEY);
            free(list);
            RegCloseKey(key);
            return 2;
        }
        previous = list;
        previous_len = len;
        list = walk(key, &len);
        walks++;
    } while (len != previous_len || memcmp(list, previous, len * sizeof(wchar_t)) != 0);
    free(previous);
    RegCloseKey(key);

    /* SERVICE as it appears in a key name. */
    wchar_t *wanted = checked(_wcsdup(service));
    for (wchar_t *c = wanted; *c; c++)
        if (*c == L'\\')
            *c = L'_';
    size_t prefix = wcslen(GENERIC_PREFIX);
    int found = 0;
    for (size_t at = 0; at < len; at += wcslen(list + at) + 1) {
        const wchar_t *name = list + at;
        if (wcsncmp(name, GENERIC_PREFIX, prefix) != 0)
            continue;
        const wchar_t *target = name + prefix;
        if (_wcsicmp(target, wanted) == 0 || ends_with(target, L'@', wanted) ||
            ends_with(target, L'.', wanted))
            found++;
    }
    free(wanted);
    free(list);
    printf("%d\n", found);
    return 0;
}

static int raw(const wchar_t *target, const wchar_t *username, const wchar_t *value)
{
    int len = WideCharToMultiByte(CP_UTF8, 0, value, -1, NULL, 0, NULL, NULL);
    char *bytes = malloc(len);
    WideCharToMultiByte(CP_UTF8, 0, value, -1, bytes, len, NULL, NULL);
    write_credential(target, username, L"", (BYTE *)bytes, (DWORD)(len - 1));
    return 0;
}

static int print_env(const wchar_t *name)
{
    const wchar_t *value = _wgetenv(name);
    if (!value)
        return 3;
    int len = WideCharToMultiByte(CP_UTF8, 0, value, -1, NULL, 0, NULL, NULL);
    char *bytes = malloc(len);
    WideCharToMultiByte(CP_UTF8, 0, value, -1, bytes, len, NULL, NULL);
    printf("[%s]", bytes);
    free(bytes);
    return 0;
}

int wmain(int argc, wchar_t **argv)
{
    if (argc == 4 && wcscmp(argv[1], L"get") == 0)
        return get(argv[2], argv[3]);
    if (argc == 5 && wcscmp(argv[1], L"set") == 0)
        return set(argv[2], argv[3], argv[4]);
    if (argc == 4 && wcscmp(argv[1], L"delete") == 0)
        return delete(argv[2], argv[3]);
    if (argc == 3 && wcscmp(argv[1], L"count") == 0)
        return count(argv[2]);
    if (argc == 5 && wcscmp(argv[1], L"raw") == 0)
        return raw(argv[2], argv[3], argv[4]);
    /* Not Python's: prints the variable NAME as the command run by
       with-secrets sees it, in brackets, without going through cmd.exe. */
    if (argc == 3 && wcscmp(argv[1], L"env") == 0)
        return print_env(argv[2]);
    fprintf(stderr, "usage: python-keyring-standin get|set|delete|count|raw|env ...\n");
    return 2;
}
