// One error base for everything Lazarus reports to a user: a stable code plus a message
// that starts with what failed and ends with what to do.
export class LazarusError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "LazarusError";
    this.code = code;
  }
}

// A state the program should never reach; reported as a bug, not as a user error.
export class BugError extends LazarusError {
  constructor(message: string) {
    super("BUG", `bug: ${message} (please report it)`);
  }
}

export function assertNever(value: never, what = "value"): never {
  throw new BugError(`unexpected ${what}: ${JSON.stringify(value)}`);
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export function isErrno(err: unknown, code: string): boolean {
  return typeof err === "object" && err !== null && (err as NodeJS.ErrnoException).code === code;
}
