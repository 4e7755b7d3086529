#!/bin/sh
# docker run with the secrets of secrets.toml, written to no file and shown
# on no command line:
#
#   ./examples/docker-run.sh [IMAGE [COMMAND [ARGS]...]]
#
# `-e NAME`, with no `=value`, tells docker to copy NAME from its own
# environment into the container's, and with-secrets has just put NAME in
# docker's environment. Never `-e NAME="$VALUE"` (any user can read a command
# line with ps) and no --env-file (a file of secrets to leak and forget).
# A variable the manifest marks optional and that is missing is simply not
# set in the container.
set -eu
cd "$(dirname "$0")"
image=${1:-alpine:3}
[ $# -gt 0 ] && shift
[ $# -gt 0 ] || set -- sh -c 'echo "API_TOKEN has ${#API_TOKEN} characters"'
exec with-secrets -- docker run --rm -e API_TOKEN -e SENTRY_DSN "$image" "$@"
