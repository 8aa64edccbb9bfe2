#!/bin/sh
# Temporary pack files a killed committer of ours left in objects/pack/
# (tmp_pack_sv-..., tmp_idx_sv-..., up to a pack's size each) are removed
# when the audit repository is next opened, under the committers' lock;
# git's own (tmp_pack_ and six letters or digits) are left alone, as are
# the packs.
. "$(dirname "$0")/lib.sh"
plan 7

A=$SUPERVISE_ROOT/audit.git
drain() { SUPERVISE_BOTTLE_SLUG=web1 timeout 60 supervised --drain >/dev/null 2>&1; }
supervise-init web1 >/dev/null
id=$(supervise-propose -s web1 -t egress-block -j x '{"host": "a.example"}')
supervise-approve "$id" >/dev/null
drain
P=$A/objects/pack
npacks=$(ls "$P" | grep -c '\.pack$')
head -c 604160 /dev/urandom >"$P/tmp_pack_sv-4242-Ab12Cd"
head -c 1000 /dev/urandom >"$P/tmp_idx_sv-Zz9Yy8"
head -c 1000 /dev/urandom >"$P/tmp_pack_Qw3Er5"
check_same "the leftovers are there" "$(ls "$P" | grep -c '^tmp_')" 3
drain
check_same "drain runs" "$?" 0
check_same "our leftover pack is gone" "$(ls "$P" | grep -c '^tmp_pack_sv-')" 0
check_same "our leftover index is gone" "$(ls "$P" | grep -c '^tmp_idx_sv-')" 0
check_same "git's temporary file is left alone" "$(ls "$P" | grep -c '^tmp_pack_Qw3Er5$')" 1
check_same "the packs are all there" "$(ls "$P" | grep -c '\.pack$')" "$npacks"
check_same "git fsck is clean" "$(git --git-dir="$A" fsck 2>&1)" ""
done_testing
