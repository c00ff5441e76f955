// One short connection of the egress benches: connect, (CONNECT through a proxy,) GET /, wait for
// the server's "ok", close. `at`: a TCP port on 127.0.0.1 or a unix socket path.
import net from "node:net";

export function shortRequest(at: number | string, serverPort: number, viaConnect: boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = typeof at === "string" ? net.connect(at) : net.connect(at, "127.0.0.1");
    s.setNoDelay(true);
    let buf = "";
    let tunnel = viaConnect;
    const get = (): boolean => s.write("GET / HTTP/1.1\r\nHost: bench.test\r\nConnection: close\r\n\r\n");
    const connect = `CONNECT bench.test:${serverPort} HTTP/1.1\r\nHost: bench.test:${serverPort}\r\n\r\n`;
    s.on("connect", () => (viaConnect ? s.write(connect) : get()));
    s.on("data", (d: Buffer) => {
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
