// A provider that closes a kept-alive connection the moment the next request arrives on it, as a
// real one does when its idle timeout and the gateway's next request cross: the first request on
// each connection is answered (an OpenAI chat completion, model "stale-ok", kept alive), a second
// on the same connection is met with the connection torn down, no byte of answer. A raw TCP server,
// because an HTTP server cannot be made to lose this race on purpose.
import net from "node:net";

export interface StaleProvider {
  url: string;
  connections: number; // accepted so far
  answered: number;
  close(): Promise<void>;
}

const BODY = JSON.stringify({
  id: "chatcmpl-stale",
  object: "chat.completion",
  created: 0,
  model: "stale-ok",
  choices: [{ index: 0, message: { role: "assistant", content: "fresh connection" }, finish_reason: "stop" }],
  usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
});

export async function startStaleProvider(): Promise<StaleProvider> {
  const sockets = new Set<net.Socket>();
  const p: StaleProvider = { url: "", connections: 0, answered: 0, close: async () => {} };
  const server = net.createServer((socket) => {
    p.connections++;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    let buffered = Buffer.alloc(0);
    let served = 0;
    socket.on("data", (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      const end = buffered.indexOf("\r\n\r\n");
      if (end < 0) return;
      const head = buffered.subarray(0, end).toString("latin1");
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
      if (buffered.length < end + 4 + length) return;
      buffered = buffered.subarray(end + 4 + length);
      if (served++ > 0) return void socket.destroy(); // the idle close, crossing the request
      p.answered++;
      socket.write(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: keep-alive\r\n" +
          `content-length: ${Buffer.byteLength(BODY)}\r\n\r\n${BODY}`,
      );
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  p.url = `http://localhost:${(server.address() as net.AddressInfo).port}`;
  p.close = () =>
    new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    });
  return p;
}
