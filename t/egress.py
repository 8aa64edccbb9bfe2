"""t/egress.py: a bottle's egress proxy for the tests, as a mitmdump addon.

Enforces the bottle's live routes.json (the file supervised publishes
into its state directory): a request whose host has no route, or whose
path is outside the route's path_allowlist, is refused with 403.  The
table is read at start-up and again on SIGHUP (a file that does not load
keeps the old table).  GET http://_egress.local/allowlist, asked through
the proxy, answers the table it enforces now as JSON, one entry per host
with its path_allowlist, auth_scheme and token_env, never a token.

    mitmdump -q --listen-host 127.0.0.1 -p 0 -s t/egress.py \
        --set egress_routes=STATE/egress/routes.json \
        --set egress_port_file=FILE

egress_port_file gets the port it listens on once it does (-p 0 picks a
free one), then "egress: reloaded N routes" goes to stdout on each SIGHUP.
"""
import json
import os
import signal

from mitmproxy import ctx, http

INTROSPECT_HOST = "_egress.local"


def load_routes(path):
    """The route table of a routes.json: {host: route}."""
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    table = {}
    for r in doc["routes"]:
        host = r["host"].lower()
        auth = r.get("auth") or {}
        table[host] = {
            "host": host,
            "path_allowlist": list(r.get("path_allowlist") or []),
            "auth_scheme": auth.get("scheme"),
            "token_env": auth.get("token_ref"),
        }
    return table


class Egress:
    def __init__(self):
        self.table = {}

    def load(self, loader):
        loader.add_option("egress_routes", str, "", "the live routes.json")
        loader.add_option("egress_port_file", str, "",
                          "where to write the port listened on")

    def configure(self, updated):
        if "egress_routes" in updated and ctx.options.egress_routes:
            self.reload()

    def reload(self):
        try:
            self.table = load_routes(ctx.options.egress_routes)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            print(f"egress: kept the old table: {e}", flush=True)
            return
        print(f"egress: reloaded {len(self.table)} routes", flush=True)

    async def running(self):
        signal.signal(signal.SIGHUP, lambda *_: self.reload())
        if ctx.options.egress_port_file:
            server = ctx.master.addons.get("proxyserver").tcp_server
            port = server.sockets[0].getsockname()[1]
            tmp = ctx.options.egress_port_file + ".tmp"
            with open(tmp, "w") as f:
                f.write(f"{port}\n")
            os.rename(tmp, ctx.options.egress_port_file)

    def refused(self, flow, why):
        flow.response = http.Response.make(
            403, f"egress: {why}\n", {"Content-Type": "text/plain"})

    def http_connect(self, flow):
        host = flow.request.host.lower()
        if host not in self.table:
            self.refused(flow, f"host {host} has no route")

    def request(self, flow):
        host = flow.request.pretty_host.lower()
        if host == INTROSPECT_HOST:
            if flow.request.method == "GET" and flow.request.path == "/allowlist":
                body = {"routes": [self.table[h] for h in sorted(self.table)]}
                flow.response = http.Response.make(
                    200, json.dumps(body, indent=2, sort_keys=True) + "\n",
                    {"Content-Type": "application/json"})
            else:
                flow.response = http.Response.make(
                    404, "egress: no such introspection path\n",
                    {"Content-Type": "text/plain"})
            return
        route = self.table.get(host)
        if route is None:
            self.refused(flow, f"host {host} has no route")
            return
        prefixes = route["path_allowlist"]
        path = flow.request.path.split("?", 1)[0]
        if prefixes and not any(path.startswith(p) for p in prefixes):
            self.refused(flow, f"path {path} is outside the route of {host}")


addons = [Egress()]
