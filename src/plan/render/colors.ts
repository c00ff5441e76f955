// Colours only on a TTY, and never with NO_COLOR (https://no-color.org).
import pc from "picocolors";

export type Colors = ReturnType<typeof pc.createColors>;

export function colorsFor(stream: NodeJS.WriteStream, env: NodeJS.ProcessEnv = process.env): Colors {
  const enabled = Boolean(stream.isTTY) && !("NO_COLOR" in env && env.NO_COLOR !== "");
  return pc.createColors(enabled);
}
