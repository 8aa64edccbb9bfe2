// burst.mjs: N concurrent blocking tools/call requests in one burst, for
// t/0360-daemon-burst.t.  Every fourth call asks for an SSE stream, the
// rest for one JSON body.  Call i proposes egress-block for host
// hI.burst.example.  Prints "sent N" once every request is on the wire,
// then, when all are answered, one line per call ("I STATUS-TEXT" or
// "I ERROR ...") and a summary "answered A approved P failed F".
import http from "node:http";

const [url, nArg] = process.argv.slice(2);
const n = Number(nArg);
const target = new URL(url);
const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });

function call(i) {
	const sse = i % 4 === 0;
	const body = JSON.stringify({
		jsonrpc: "2.0", id: i, method: "tools/call",
		params: { name: "egress-block", arguments: {
			host: `h${i}.burst.example`, justification: `burst call ${i}` } },
	});
	return new Promise((resolve) => {
		const req = http.request({
			host: target.hostname, port: target.port, path: target.pathname,
			method: "POST", agent,
			headers: {
				"Content-Type": "application/json",
				"Content-Length": Buffer.byteLength(body),
				Accept: sse ? "application/json, text/event-stream" : "application/json",
			},
		}, (res) => {
			let text = "";
			res.setEncoding("utf8");
			res.on("data", (d) => { text += d; });
			res.on("end", () => {
				try {
					if (sse) {
						const data = text.split("\n").filter((l) => l.startsWith("data: "));
						text = data[data.length - 1].slice(6);
					}
					const msg = JSON.parse(text);
					if (msg.id !== i || !msg.result)
						return resolve(`${i} ERROR ${text.trim()}`);
					resolve(`${i} ${msg.result.content[0].text.split("\n")[0]}`);
				} catch (err) {
					resolve(`${i} ERROR ${err.message}: ${text.slice(0, 200)}`);
				}
			});
		});
		req.on("error", (err) => resolve(`${i} ERROR ${err.message}`));
		req.end(body);
	});
}

const calls = [];
for (let i = 1; i <= n; i++)
	calls.push(call(i));
console.log(`sent ${n}`);
const lines = await Promise.all(calls);
let approved = 0, failed = 0;
for (const line of lines) {
	console.log(line);
	if (line.endsWith(" status: approved"))
		approved++;
	else
		failed++;
}
console.log(`answered ${lines.length} approved ${approved} failed ${failed}`);
