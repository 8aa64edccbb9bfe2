#!/bin/sh
# run.sh BINDIR [SUPERVISED_ARG...]: what `make run` does.  Creates a local spool and audit
# repository (under ./run, or $SUPERVISE_ROOT), then runs supervised in the
# foreground on 127.0.0.1:9100 (or $SUPERVISE_PORT), after printing how to
# connect an MCP client and how to decide from another terminal.
set -eu
bin=${1:?usage: run.sh BINDIR [SUPERVISED_ARG...]}
shift
PATH="$bin:$PATH"
SUPERVISE_ROOT=${SUPERVISE_ROOT:-$PWD/run}
SUPERVISE_BOTTLE_SLUG=${SUPERVISE_BOTTLE_SLUG:-demo}
SUPERVISE_PORT=${SUPERVISE_PORT:-9100}
SUPERVISE_BIND=${SUPERVISE_BIND:-127.0.0.1}
export PATH SUPERVISE_ROOT SUPERVISE_BOTTLE_SLUG SUPERVISE_PORT SUPERVISE_BIND
slug=$SUPERVISE_BOTTLE_SLUG
url="http://$SUPERVISE_BIND:$SUPERVISE_PORT/mcp"

mkdir -p "$SUPERVISE_ROOT"
supervise-init "$slug" >/dev/null

cat <<MSG
supervise: bottle '$slug', spool $SUPERVISE_ROOT/queue/$slug,
           audit repository $SUPERVISE_ROOT/audit.git

Connect an MCP client to $url
  curl:        curl -s $url -H 'Content-Type: application/json' -d '{"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                 "params": {"name": "egress-block", "arguments": {"host": "api.github.com",
                 "justification": "clone the repository"}}}'
               (waits until you decide; add -H 'Accept: text/event-stream' for SSE)
  Claude Code: claude mcp add --transport http supervise $url
  Codex:       in ~/.codex/config.toml:
                 [mcp_servers.supervise]
                 url = "$url"
                 tool_timeout_sec = 3600

Decide from another terminal:
  export SUPERVISE_ROOT=$SUPERVISE_ROOT PATH=$bin:\$PATH
  supervise-list                                # pending proposals
  supervise-show ID                             # a proposal and its diff
  supervise-approve -n 'go ahead' ID            # or: supervise-list | cut -f1 | supervise-approve
  supervise-reject -n 'not this one' ID
  git --git-dir=$SUPERVISE_ROOT/audit.git log   # the audit trail

Stop with Ctrl-C.
MSG
exec supervised "$@"
