// loadclient.mjs: many agents' blocking tools/call requests, for the
// flood and load tests (t/0425-flood.t, t/0440-load.t).
//
//   node loadclient.mjs URL N [same|distinct] [PREFIX] [CONCURRENCY]
//
// Call i proposes egress-block for host PREFIXi.example ("distinct") or
// every call for PREFIX.example ("same": an agent retrying).  At most
// CONCURRENCY calls (default N) are open at once; each waits for its
// decision.  Prints "connected N" once every one of the first CONCURRENCY
// calls has been sent, then at the end one summary line:
// "answered A approved P rejected R failed F seconds S".  Failures are
// listed on stderr.
import http from "node:http";

const [url, nArg, mode = "distinct", prefix = "h", cArg] = process.argv.slice(2);
const n = Number(nArg);
const concurrency = Math.min(n, Number(cArg || n));
const target = new URL(url);
const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
const started = Date.now();
let sent = 0, next = 0, answered = 0, approved = 0, rejected = 0, failed = 0;

function call(i) {
	const host = mode === "same" ? `${prefix}.example` : `${prefix}${i}.example`;
	const body = JSON.stringify({
		jsonrpc: "2.0", id: i, method: "tools/call",
		params: { name: "egress-block", arguments: {
			host, justification: `load call ${i}` } },
	});
	return new Promise((resolve) => {
		const req = http.request({
			host: target.hostname, port: target.port, path: target.pathname,
			method: "POST", agent, timeout: 600000,
			headers: {
				"Content-Type": "application/json",
				"Content-Length": Buffer.byteLength(body),
				Accept: "application/json",
			},
		}, (res) => {
			let text = "";
			res.setEncoding("utf8");
			res.on("data", (d) => { text += d; });
			res.on("end", () => {
				answered++;
				try {
					const t = JSON.parse(text).result.content[0].text;
					if (t.startsWith("status: approved")) approved++;
					else if (t.startsWith("status: rejected")) rejected++;
					else { failed++; console.error(`${i} ${t}`); }
				} catch (e) {
					failed++;
					console.error(`${i} HTTP ${res.statusCode} ${text.slice(0, 200)}`);
				}
				resolve();
			});
		});
		req.on("error", (e) => {
			failed++;
			console.error(`${i} ERROR ${e.message}`);
			resolve();
		});
		req.on("timeout", () => req.destroy(new Error("timeout")));
		req.end(body, () => {
			if (++sent === concurrency)
				console.log(`connected ${concurrency}`);
		});
	});
}

async function worker() {
	while (next < n)
		await call(next++);
}

await Promise.all(Array.from({ length: concurrency }, worker));
console.log(`answered ${answered} approved ${approved} rejected ${rejected} ` +
    `failed ${failed} seconds ${((Date.now() - started) / 1000).toFixed(1)}`);
