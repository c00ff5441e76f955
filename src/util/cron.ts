// cron-parser, loaded on the first cron expression: it brings luxon (~50 ms of start-up), and most
// configs declare no checkpoint schedule. cron-parser is CommonJS, so a synchronous require works.
import { createRequire } from "node:module";

type CronParser = typeof import("cron-parser").CronExpressionParser;
let parser: CronParser | undefined;

export function cronParser(): CronParser {
  parser ??= (createRequire(import.meta.url)("cron-parser") as typeof import("cron-parser")).CronExpressionParser;
  return parser;
}
