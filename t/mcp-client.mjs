// mcp-client.mjs: the official MCP TypeScript SDK as an agent would use it,
// driven by the tests in t/03xx-*.t against a live supervised.
//
//   node mcp-client.mjs URL list
//       connect, tools/list; prints "tool NAME" per tool
//   node mcp-client.mjs URL call TOOL JSON_ARGS [progress]
//       connect, tools/call; with "progress", asks for progress
//       notifications and prints "progress N MESSAGE" for each; then
//       prints "result JSON" (the CallToolResult) or "error MESSAGE"
//
// Lines go to stdout as they happen, so a test can wait for one.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, cmd, tool, argsJson, flag] = process.argv.slice(2);
const say = (line) => process.stdout.write(line + "\n");

const client = new Client({ name: "supervise-test", version: "0.0.0" });
const transport = new StreamableHTTPClientTransport(new URL(url));
let status = 0;
try {
	await client.connect(transport);
	say(`connected ${client.getServerVersion()?.name} ${transport.protocolVersion ?? ""}`);
	if (cmd === "list") {
		const { tools } = await client.listTools();
		for (const t of tools)
			say(`tool ${t.name}`);
	} else if (cmd === "call") {
		const opts = { timeout: 120000 };
		if (flag === "progress") {
			opts.onprogress = (p) => say(`progress ${p.progress} ${p.message ?? ""}`);
			opts.resetTimeoutOnProgress = true;
		}
		const result = await client.callTool(
			{ name: tool, arguments: JSON.parse(argsJson) }, undefined, opts);
		say(`result ${JSON.stringify(result)}`);
	} else {
		throw new Error(`unknown command ${cmd}`);
	}
} catch (err) {
	say(`error ${err.message}`);
	status = 1;
}
await client.close().catch(() => {});
process.exit(status);
