// The credential step of loading: every declared credential must come from the operator's
// sources (see host/secrets.ts), and so must a kubernetes cell's kubeconfig (a kubeconfig can run
// commands on this host through its exec plugins, and names a cluster and the identity to reach it
// with: only a file under the operator's secrets root). One that does not is an error at its line,
// so its file is quarantined and its cells held, never closed. Values are read only to digest them.
import type { Diagnostic } from "./diagnostics.js";
import type { DesiredCell, FileResult } from "./types.js";
import { readSource, secretPath, valuesDigest, type CredentialContext } from "../host/secrets.js";

// Check one cell's credentials: diagnostics, and the digest of their current values when all are readable.
export async function checkCellCredentials(
  cell: DesiredCell,
  ctx: CredentialContext,
): Promise<{ diagnostics: Diagnostic[]; digest?: string }> {
  const diagnostics: Diagnostic[] = [];
  const values = Object.create(null) as Record<string, string>; // a credential may be named __proto__
  for (const [name, source] of Object.entries(cell.credentials)) {
    const r = await readSource(source, ctx);
    if (r.ok) values[name] = r.value;
    else
      diagnostics.push({
        severity: "error",
        ...(cell.credentialsAt?.[name] ?? cell.source),
        field: `spec.credentials.${name}.${r.field}`,
        message: r.message,
        hint: r.hint,
      });
  }
  if (diagnostics.length > 0 || !ctx.digestKey || Object.keys(values).length === 0) return { diagnostics };
  return { diagnostics, digest: valuesDigest(ctx.digestKey, values) };
}

// A file's result with its credentials checked: a new result, the parsed one is left as it was.
export async function checkFileCredentials(result: FileResult, ctx: CredentialContext): Promise<FileResult> {
  const diagnostics = [...result.diagnostics];
  const cells: DesiredCell[] = [];
  for (const parsed of result.cells) {
    let c = parsed;
    const kubeconfig = c.kubernetes?.kubeconfig;
    if (c.kubernetes && kubeconfig !== undefined) {
      const p = await secretPath(kubeconfig, ctx.host, "kubeconfig files", "kube/prod.yaml");
      if (p.ok) c = { ...c, kubernetes: { ...c.kubernetes, kubeconfig: p.path } };
      else
        diagnostics.push({
          severity: "error",
          ...(c.kubeconfigAt ?? c.source),
          field: "spec.kubernetes.kubeconfig",
          message: p.message,
          hint: p.hint,
        });
    }
    if (Object.keys(c.credentials).length === 0) {
      cells.push(c);
      continue;
    }
    const r = await checkCellCredentials(c, ctx);
    diagnostics.push(...r.diagnostics);
    const { credentialsValueDigest: _old, ...rest } = c;
    cells.push(r.digest ? { ...rest, credentialsValueDigest: r.digest } : rest);
  }
  return { ...result, cells, diagnostics };
}
