// execa, loaded on first use: it pulls in about 130 modules (~0.1 s of start-up), and most
// commands (plan, status, validate) never run a program. Callers only await the result.
import type { Options, Result } from "execa";

type Execa = typeof import("execa").execa;
let loaded: Promise<Execa> | undefined;

export async function execa<O extends Options = Options>(
  file: string,
  args: readonly string[],
  options?: O,
): Promise<Result<O>> {
  const run = await (loaded ??= import("execa").then((m) => m.execa));
  return (await run(file, args, options)) as unknown as Result<O>;
}
