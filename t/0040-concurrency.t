#!/bin/sh
# 8 writers x 500 proposals against a scanner, and racing deciders.
exec timeout 300 "${SUPERVISE_BUILD:-$(dirname "$0")/../build}/t/deliverstress"
