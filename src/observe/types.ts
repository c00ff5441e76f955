// What observe finds: the types of the real world as read (cell records, member liveness,
// checkpoints). A leaf module, so backends that observe their own members can fill them in.
import type { CellRecord, MemberRecord } from "../cells/record.js";
import type { DiskUsage } from "../backends/disk/image.js";
import type { Tombstone } from "./tombstone.js";
import type { ObservedProgress } from "../progress/types.js";

export type Place = "cells" | "graveyard" | "archive";

export interface ObservedMember extends MemberRecord {
  alive: boolean;
  // what the wrapper wrote when the command exited (oom: killed by its memory limit)
  exit?: { code: number; at: number; oom?: boolean };
  heartbeatAt?: number; // mtime of home/<name>/.heartbeat, read only for members with a heartbeat
  ignored?: string[]; // member-written files that were not believed (a link, a FIFO, too big, garbage), and why
  // Why its process can be neither proved this member's nor gone (its pid lives with the recorded
  // start time, but its environment cannot be read): unknown, not dead (alive stays false).
  unverifiable?: string;
}

export interface ObservedCheckpoint {
  file: string; // absolute path of the archive (.tar.zst or .tar.gz)
  name: string; // e.g. 20261125T120000Z.tar.zst
  takenAt: number;
}

export interface ObservedCell {
  name: string;
  place: Place;
  dir: string;
  // undefined when the directory has no readable cell.json; such a cell is never touched.
  record?: CellRecord;
  unreadable?: string;
  members: ObservedMember[];
  // A remote cell whose host did not answer (why): its members' state is unknown.
  unreachable?: string;
  // Frozen for a checkpoint (abandoned: its freezer died; the next command thaws it).
  frozen?: { since: string; pid: number; abandoned: boolean };
  // Whole checkpoints only (tar and manifest both present), oldest first.
  checkpoints: ObservedCheckpoint[];
  // A live cell with a disk quota (record.disk): whether its image is in place, and how full.
  disk?: DiskUsage;
  // A live cell judged for progress (record.progress): its evidence now against its recorded clock.
  progress?: ObservedProgress;
}

export interface ObservedName {
  live?: ObservedCell; // under cells/
  graveyard?: ObservedCell;
  archives: ObservedCell[];
  tombstone?: Tombstone; // how the name last closed, kept past the purge of its archives
  scrubbing?: string[]; // graveyard entries a killed scrub moved aside (.scrubbing-<cell>~<id>): being scrubbed
}

export interface Observed {
  cells: Map<string, ObservedName>;
}
