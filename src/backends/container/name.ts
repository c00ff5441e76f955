// The engine's name of a member's container (pure: status and plan say it without loading argv.ts).
export const containerName = (spawnId: string): string => `lazarus-${spawnId}`;
