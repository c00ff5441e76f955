// Where a declaration came from, for diagnostics and for quarantine.
export interface SourcePos {
  file: string; // relative to the config dir, e.g. cells.d/team.yaml
  line: number;
  col: number;
}
