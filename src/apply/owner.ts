// The owner a member's recorded pid must prove before Lazarus signals it or counts it alive.
import type { Owner } from "../backends/backend.js";
import type { MemberRecord } from "../cells/record.js";

// cell: the name the cell's directory has (never the record's own name field, which a member can edit).
export function memberOwner(cell: string, m: Pick<MemberRecord, "spawnId">): Owner {
  return { spawnId: m.spawnId, cell };
}
