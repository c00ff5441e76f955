// What a backend does for one member: start its process, tell whether it lives, stop it.
export interface StartSpec {
  cell: string;
  cellDir: string;
  identity: string;
  home: string; // absolute path of the member's home
  role: string;
  command: string[];
  env: Record<string, string>; // the member's declared env (non-secret)
  credentialsFile: string;
  logFile: string;
  exitFile: string; // where the command's exit code is written when it exits
  portfolioFile?: string; // the member's resolved model portfolio (LAZARUS_PORTFOLIO)
  spawnId: string; // marks the process so a crashed recorder can find it again
}

export interface Started {
  pid: number;
  startTime: number | undefined; // undefined when it exited before it could be read
}

// Whose process a recorded pid must be: the member's spawn id and its cell's name (from the cell's
// directory, never from its member-writable record). With an owner, a pid counts only when the
// process proves it was started for that member; without a spawn id it never does.
export interface Owner {
  spawnId: string | undefined;
  cell: string;
}

export interface Backend {
  readonly name: string;
  start(spec: StartSpec): Promise<Started>;
  isAlive(pid: number | undefined, startTime: number | undefined, owner?: Owner): boolean;
  // Stop gracefully, then forcefully after timeoutMs. Resolves when it is gone. With an owner,
  // a process that is not that member's is left alone.
  stop(pid: number, startTime: number | undefined, timeoutMs: number, owner?: Owner): Promise<void>;
  // The live process started with this spawnId (and, when given, for this cell), if any.
  find(spawnId: string, cell?: string): Started | undefined;
}
