// origin.mjs: a loopback HTTP origin server for the apply tests, the
// target of requests made through the egress proxy under test.
//
//   node origin.mjs PORTFILE
//       listen on 127.0.0.1, a port the kernel picks; write it to PORTFILE;
//       answer every request "hello from origin".
import http from "node:http";
import fs from "node:fs";

const srv = http.createServer((req, res) => res.end("hello from origin\n"));
srv.listen(0, "127.0.0.1", () => {
	fs.writeFileSync(process.argv[2] + ".tmp", `${srv.address().port}\n`);
	fs.renameSync(process.argv[2] + ".tmp", process.argv[2]);
});
