#!/bin/sh
exec "${SUPERVISE_BUILD:-$(dirname "$0")/../build}/t/policy"
