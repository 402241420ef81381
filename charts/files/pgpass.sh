#!/bin/sh
# Writes a libpq password file (PGPASSFILE) for USER from a mounted Secret
# file, readable only by its owner, as libpq requires. Its fields are
# colon-separated, so ':' and '\' in the password are escaped.
#
# Usage: pgpass.sh SECRET_FILE USER OUTPUT
set -eu
pw=$(cat "$1")
esc=$(printf '%s' "$pw" | sed -e 's/\\/\\\\/g' -e 's/:/\\:/g')
umask 077
printf '*:*:*:%s:%s\n' "$2" "$esc" >"$3"
