/* The protocol floor: the least a client can do to read N secrets from a
 * Secret Service, written against libdbus with nothing else in the way.
 *
 *   protocol-floor N      reads service "bench", usernames user-1..user-N
 *
 * One connection; Hello, OpenSession ("plain": no key exchange) and N
 * SearchItems leave in one write; then one GetSecrets for every item found.
 * No manifest, no environment, no exec, no encryption: bench/run times it
 * beside with-secrets to show how close with-secrets comes to the protocol.
 * Built by bench/run with: cc -O2 protocol-floor.c $(pkg-config --cflags --libs dbus-1)
 */
#include <dbus/dbus.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *SECRETS = "org.freedesktop.secrets";
static const char *SERVICE_PATH = "/org/freedesktop/secrets";
static const char *SERVICE_IFACE = "org.freedesktop.Secret.Service";

static void die(const char *what) {
    fprintf(stderr, "protocol-floor: %s\n", what);
    exit(1);
}

static dbus_uint32_t send(DBusConnection *c, DBusMessage *m) {
    dbus_uint32_t serial = 0;
    if (!dbus_connection_send(c, m, &serial)) die("send failed");
    dbus_message_unref(m);
    return serial;
}

/* Waits until every serial in `serials` has its reply in `replies`. */
static void wait_all(DBusConnection *c, const dbus_uint32_t *serials, DBusMessage **replies, int count) {
    int missing = count;
    while (missing > 0) {
        if (!dbus_connection_read_write(c, 10000)) die("disconnected");
        DBusMessage *m;
        while ((m = dbus_connection_pop_message(c)) != NULL) {
            dbus_uint32_t reply_to = dbus_message_get_reply_serial(m);
            int matched = 0;
            for (int i = 0; i < count; i++) {
                if (serials[i] == reply_to && replies[i] == NULL) {
                    if (dbus_message_get_type(m) == DBUS_MESSAGE_TYPE_ERROR) die(dbus_message_get_error_name(m));
                    replies[i] = m;
                    missing--;
                    matched = 1;
                    break;
                }
            }
            if (!matched) dbus_message_unref(m);
        }
    }
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 1;
    const char *address = getenv("DBUS_SESSION_BUS_ADDRESS");
    if (n < 1 || address == NULL) die("usage: DBUS_SESSION_BUS_ADDRESS=... protocol-floor N");
    DBusError error;
    dbus_error_init(&error);
    DBusConnection *c = dbus_connection_open_private(address, &error);
    if (c == NULL) die(error.message);

    int count = n + 2; /* Hello, OpenSession, N searches */
    dbus_uint32_t *serials = calloc(count, sizeof *serials);
    DBusMessage **replies = calloc(count, sizeof *replies);
    serials[0] = send(c, dbus_message_new_method_call("org.freedesktop.DBus", "/org/freedesktop/DBus",
                                                      "org.freedesktop.DBus", "Hello"));

    DBusMessage *open = dbus_message_new_method_call(SECRETS, SERVICE_PATH, SERVICE_IFACE, "OpenSession");
    DBusMessageIter iter, variant;
    const char *plain = "plain", *empty = "";
    dbus_message_iter_init_append(open, &iter);
    dbus_message_iter_append_basic(&iter, DBUS_TYPE_STRING, &plain);
    dbus_message_iter_open_container(&iter, DBUS_TYPE_VARIANT, "s", &variant);
    dbus_message_iter_append_basic(&variant, DBUS_TYPE_STRING, &empty);
    dbus_message_iter_close_container(&iter, &variant);
    serials[1] = send(c, open);

    for (int i = 0; i < n; i++) {
        char username[32];
        snprintf(username, sizeof username, "user-%d", i + 1);
        const char *keys[2] = {"service", "username"};
        const char *values[2] = {"bench", username};
        DBusMessage *search = dbus_message_new_method_call(SECRETS, SERVICE_PATH, SERVICE_IFACE, "SearchItems");
        DBusMessageIter args, dict, entry;
        dbus_message_iter_init_append(search, &args);
        dbus_message_iter_open_container(&args, DBUS_TYPE_ARRAY, "{ss}", &dict);
        for (int k = 0; k < 2; k++) {
            dbus_message_iter_open_container(&dict, DBUS_TYPE_DICT_ENTRY, NULL, &entry);
            dbus_message_iter_append_basic(&entry, DBUS_TYPE_STRING, &keys[k]);
            dbus_message_iter_append_basic(&entry, DBUS_TYPE_STRING, &values[k]);
            dbus_message_iter_close_container(&dict, &entry);
        }
        dbus_message_iter_close_container(&args, &dict);
        serials[2 + i] = send(c, search);
    }
    wait_all(c, serials, replies, count);

    /* The session path, and the first unlocked item of each search. */
    const char *session = NULL;
    DBusMessageIter reply_iter, inner;
    dbus_message_iter_init(replies[1], &reply_iter);
    dbus_message_iter_next(&reply_iter);
    dbus_message_iter_get_basic(&reply_iter, &session);

    DBusMessage *get = dbus_message_new_method_call(SECRETS, SERVICE_PATH, SERVICE_IFACE, "GetSecrets");
    DBusMessageIter get_args, items;
    dbus_message_iter_init_append(get, &get_args);
    dbus_message_iter_open_container(&get_args, DBUS_TYPE_ARRAY, "o", &items);
    int found = 0;
    for (int i = 0; i < n; i++) {
        dbus_message_iter_init(replies[2 + i], &reply_iter);
        dbus_message_iter_recurse(&reply_iter, &inner);
        if (dbus_message_iter_get_arg_type(&inner) == DBUS_TYPE_OBJECT_PATH) {
            const char *path;
            dbus_message_iter_get_basic(&inner, &path);
            dbus_message_iter_append_basic(&items, DBUS_TYPE_OBJECT_PATH, &path);
            found++;
        }
    }
    dbus_message_iter_close_container(&get_args, &items);
    dbus_message_iter_append_basic(&get_args, DBUS_TYPE_OBJECT_PATH, &session);
    dbus_uint32_t get_serial = send(c, get);
    DBusMessage *secrets = NULL;
    wait_all(c, &get_serial, &secrets, 1);
    if (found != n) die("an item is missing");
    return 0;
}
