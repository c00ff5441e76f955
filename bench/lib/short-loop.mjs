// The short connections of the egress bench, in a process of its own (so the proxied side can run
// inside a member's network namespace: `nsenter --net=FILE node short-loop.mjs ...`, and the
// direct side the same program on the host): N sequential connect to 127.0.0.1:AT, (CONNECT
// bench.test:SERVER,) GET /, wait for the server's "ok", close. Prints the ms per connection.
//   node short-loop.mjs AT SERVER VIA_CONNECT(0|1) N
import net from "node:net";

const [at, serverPort, via, n] = process.argv.slice(2).map(Number);

function once() {
  return new Promise((resolve, reject) => {
    const s = net.connect(at, "127.0.0.1");
    s.setNoDelay(true);
    let buf = "";
    let tunnel = via === 1;
    const get = () => s.write("GET / HTTP/1.1\r\nHost: bench.test\r\nConnection: close\r\n\r\n");
    const connect = `CONNECT bench.test:${serverPort} HTTP/1.1\r\nHost: bench.test:${serverPort}\r\n\r\n`;
    s.on("connect", () => (tunnel ? s.write(connect) : get()));
    s.on("data", (d) => {
      buf += d.toString("latin1");
      if (tunnel && buf.includes("\r\n\r\n")) {
        if (!buf.startsWith("HTTP/1.1 200")) return reject(new Error(buf));
        tunnel = false;
        buf = "";
        get();
      }
    });
    s.on("end", () => (buf.includes("ok") ? resolve() : reject(new Error(`no answer: ${buf}`))));
    s.on("error", reject);
  });
}

for (let i = 0; i < 20; i++) await once(); // warm-up
const t = process.hrtime.bigint();
for (let i = 0; i < n; i++) await once();
console.log(Number(process.hrtime.bigint() - t) / 1e6 / n);
