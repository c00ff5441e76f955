// Test helper, run as `nsenter --net=FILE -- node connect-child.mjs PORT`: connects to
// 127.0.0.1:PORT inside that network namespace (as a member would) and hands the connected socket
// to the test over node's IPC, then ends.
import net from "node:net";

const s = net.connect(Number(process.argv[2]), "127.0.0.1");
s.on("connect", () => process.send("connected", s, () => process.disconnect()));
s.on("error", (e) => process.send({ error: e.code ?? e.message }, () => process.disconnect()));
