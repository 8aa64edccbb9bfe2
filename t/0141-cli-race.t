#!/bin/sh
# Two operators deciding one proposal at the same moment: in every round
# exactly one wins, the response on disk is the winner's, and the loser
# exits 1 saying the proposal was already decided.
. "$(dirname "$0")/lib.sh"
ROUNDS=20
plan $((ROUNDS * 4))

Q=$SUPERVISE_ROOT/queue
supervise-init web1 >/dev/null

for round in $(seq $ROUNDS); do
	id=$(supervise-propose -s web1 -t capability-block -j why "FROM r$round")
	# Both start once the flag file appears, to meet in the same instant.
	rm -f go
	timeout 10 sh -c 'while [ ! -e go ]; do :; done
	    exec supervise-approve -n one "$1"' sh "$id" >a.out 2>a.err &
	pa=$!
	timeout 10 sh -c 'while [ ! -e go ]; do :; done
	    exec supervise-reject -n two "$1"' sh "$id" >b.out 2>b.err &
	pb=$!
	: >go
	wait $pa; ra=$?
	wait $pb; rb=$?
	status=$(sed -n 's/^  "status": "\([a-z]*\)",\{0,1\}$/\1/p' "$Q/web1/responses/new/$id")
	case $ra:$rb in
	0:1)	winner=approved
		loser_err=$(cat b.err)
		want="supervise-reject: can't reject '$id': already decided" ;;
	1:0)	winner=rejected
		loser_err=$(cat a.err)
		want="supervise-approve: can't approve '$id': already decided" ;;
	*)	winner="both exited $ra:$rb"; loser_err=; want=- ;;
	esac
	check_match "round $round: exactly one decider succeeds" "$ra:$rb" '^(0:1|1:0)$'
	check_same "round $round: the response is the winner's" "$status" "$winner"
	check_same "round $round: the loser says it was already decided" \
	    "$loser_err" "$want"
	check_same "round $round: nothing is left in responses/tmp/" \
	    "$(ls -A "$Q/web1/responses/tmp")" ""
done

done_testing
