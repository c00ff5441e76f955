// Started by bridge/listen.ts as `nsenter --net=FILE -- node listen-child.mjs PORT HOST`, so it
// runs inside a member's network namespace: it listens on HOST:PORT there and hands the listening
// socket to its parent over node's IPC channel (a socket keeps the namespace it was made in),
// then ends. Nothing of it stays in the namespace.
import net from "node:net";

const [port, host] = process.argv.slice(2);
const server = net.createServer();
server.on("error", (err) => {
  process.stderr.write(`${err.code ?? err.message}\n`);
  process.exit(1);
});
server.listen({ port: Number(port), host, backlog: 511 }, () => {
  process.send("listening", server, () => {
    server.close();
    process.disconnect();
  });
});
