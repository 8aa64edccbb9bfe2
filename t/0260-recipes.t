#!/bin/sh
# The git log recipes of supervise-config(1), "Reading the audit trail",
# run as printed against a repository with decisions and edits in it:
# each must work and answer its question.
. "$(dirname "$0")/lib.sh"
plan 16

A=$SUPERVISE_ROOT/audit.git
drain() { SUPERVISE_BOTTLE_SLUG=$1 timeout 60 supervised --drain; }

printf '{"routes": [{"host": "pypi.org"}]}\n' >routes.json
supervise-init --routes routes.json web1 >/dev/null
supervise-init web2 >/dev/null
a=$(supervise-propose -s web1 -t egress-block -j 'need the API' \
    '{"host": "api.github.com"}')
b=$(supervise-propose -s web1 -t pipelock-block -j 'downloads' \
    'https://api.github.com/repos/x/y/tarball')
# An agent that writes trailers into its justification: the recipes
# read the trailers git parses, which its quoted lines are not.
c=$(supervise-propose -s web2 -t egress-block -j "$(printf 'exfil?\n\nProposal-Id: %s\nAction: operator-edit' "$a")" \
    '{"host": "evil.example"}')
supervise-approve "$a" "$b" >/dev/null
SUPERVISE_OPERATOR='Bob Second <bob@example.org>' supervise-reject -n no "$c" >/dev/null
drain web1 >/dev/null && drain web2 >/dev/null
printf 'api.github.com\nmirror.example\n' >allow
supervise-config -m 'add the mirror' -f allow web1 pipelock >/dev/null

# The recipes: the "$ git" lines of the literal blocks after the
# subsection, continuation lines joined, mdoc's \e made a backslash.
recipes=$(awk '
	/^\.Ss Reading the audit trail/ { on = 1; next }
	/^\.S[hs] / { on = 0 }
	on && /^\.Bd -literal/ { lit = 1; next }
	on && /^\.Ed/ { lit = 0; next }
	on && lit {
		line = $0
		gsub(/\\e/, "\\", line)
		if (cmd != "") { sub(/^ +/, " ", line); cmd = cmd line }
		else if (line ~ /^\$ git /) cmd = substr(line, 3)
		else next
		if (cmd ~ /\\$/) { sub(/\\$/, "", cmd); next }
		print cmd
		cmd = ""
	}' "$T_TOP/man/supervise-config.1")
check_same "the page holds the recipes" "$(printf '%s\n' "$recipes" | wc -l | tr -d ' ')" 10

n=0
printf '%s\n' "$recipes" |
    sed "s/1795372716\\.M652059P19635Q1R76bddac99d901c51\\.vm/$a/" >recipes
while IFS= read -r cmd; do
	n=$((n + 1))
	(cd "$A" && eval "$cmd") >"r$n" 2>"e$n" </dev/null
	echo "$?" >"rc$n"
done <recipes
ok_all=1
i=1
while [ "$i" -le "$n" ]; do
	if [ "$(cat "rc$i")" != 0 ] || [ ! -s "r$i" ] || [ -s "e$i" ]; then
		ok_all=0
		diag "recipe $i failed: $(sed -n "${i}p" recipes)" "$(cat "e$i")"
	fi
	i=$((i + 1))
done
check_same "every recipe runs, quietly, with an answer" "$ok_all" 1

check_match "who allowed api.github.com (routes)" "$(cat r1)" \
    ' Test Operator  web1: approve egress-block api.github.com$'
# The egress route put the host on pipelock's allowlist (its mirror), so
# the pipelock-block approved after it changed nothing there.
check_same "who allowed api.github.com (pipelock)" \
    "$(sed 's/^[0-9a-f]* [0-9-]* //' r2)" \
    "Test Operator  web1: approve egress-block api.github.com"
check_match "granted this week: the diffs" "$(cat r3)" '^\+mirror\.example$'
check_match "granted this week: the edit" "$(cat r3)" 'operator edit pipelock/allowlist'
check_same "granted this week, from the trailers" "$(sed 's/^[0-9a-f]* [0-9-]* //' r4)" \
    "Test Operator  web1: approve pipelock-block api.github.com
Test Operator  web1: approve egress-block api.github.com"
check_match "all rejections" "$(cat r5)" ' Bob Second  web2: reject egress-block evil.example$'
check_same "rejections by operator" "$(tr -s ' \t' ' ' <r6)" " 1 Bob Second"
check_same "the decision table" "$(cut -f2,3 r7 | tr '\t' '|')" \
    "|Test Operator
rejected|Bob Second
approved|Test Operator
approved|Test Operator
|Test Operator"
check_match "one proposal: its record" "$(cat r8)" "decisions/.*/$a\.json"
check_match "one proposal: its routes change" "$(cat r8)" '^\+      "host": "api.github.com"'
check_match "route history names the proposal" "$(cat r9)" "^Proposal-Id: $a\$"
check_match "operator edits only" "$(cat r10)" ' web1: operator edit pipelock/allowlist$'
check_same "one proposal: not the one whose justification names it" \
    "$(grep -c 'evil\.example' r8)" 0
check_same "operator edits: not a justification that says it is one" \
    "$(grep -c . r10)" 1
done_testing
