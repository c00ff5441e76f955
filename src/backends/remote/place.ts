// Where a remote cell lives: its host, port, user and root (its key files are only how Lazarus
// reaches it). Pure, so the fields table and the backend's own rules share it without a cycle.
import type { RemoteTarget } from "../../config/types.js";

export const samePlace = (a: RemoteTarget, b: RemoteTarget): boolean =>
  a.host === b.host && a.port === b.port && a.user === b.user && a.root === b.root;

export const placeText = (x: RemoteTarget): string => `${x.user ? `${x.user}@` : ""}${x.host}:${x.port} ${x.root}`;
