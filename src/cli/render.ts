// `lazarus render --backend kubernetes [CELL…]`: the objects a backend makes for its cells (the
// Kubernetes objects of kubernetes cells) as YAML (or a JSON list), in a stable order, for review
// or for another GitOps tool. Credentials are never printed unless --show-secrets: the Secret then
// carries no data, only the names and sources of the credentials in an annotation. Which backends
// can render, and how, is theirs to say (BackendSpec.render).
import { Command, Option } from "commander";
import { stringify } from "yaml";
import { loadConfig } from "../config/load.js";
import { hasErrors, sortDiagnostics } from "../config/diagnostics.js";
import type { DesiredCell } from "../config/types.js";
import { readSource } from "../host/secrets.js";
import { renderDiagnostics } from "../plan/render/text.js";
import { LazarusError } from "../util/errors.js";
import { REGISTRY, backendSpec } from "../backends/table.js";
import { action, err, hostOptions, out, stderrColors, withCommon, type CommonOpts } from "./common.js";

type RenderOpts = CommonOpts & { backend: string; showSecrets?: boolean; json?: boolean };

export function renderCommand(): Command {
  const renderers = REGISTRY.filter((b) => b.render).map((b) => b.name);
  return withCommon(new Command("render"))
    .description(
      "print the objects of kubernetes cells (all, or those named) as YAML: Secret, PersistentVolumeClaim, NetworkPolicy, one Pod or Sandbox per member",
    )
    .argument("[cells...]", "cell names (default: every cell with backend: kubernetes)")
    .addOption(
      new Option("--backend <name>", "the backend whose objects to render").choices(renderers).default(renderers[0]),
    )
    .option("--show-secrets", "put the credentials' values in the Secret (default: only their names and sources)")
    .option("--json", "print a JSON list of the objects instead of YAML documents")
    .action(
      action(async (names: string[], o: RenderOpts) => {
        const host = hostOptions(o);
        const { desired, diagnostics } = await loadConfig(o.config, { host, hostEnv: process.env });
        const renderer = backendSpec(o.backend).render;
        if (!renderer) throw new LazarusError("BAD_FLAGS", `backend ${o.backend} has no objects to render`);
        const wanted = names.length
          ? names
          : [...desired.cells.values()].filter((c) => c.backend === o.backend).map((c) => c.name);
        const problems: string[] = [];
        const cells: DesiredCell[] = [];
        for (const n of wanted) {
          const c = desired.cells.get(n);
          if (!c) problems.push(`no cell named ${n} is declared in ${o.config}/cells.d`);
          else if (c.backend !== o.backend)
            problems.push(
              `cell ${n} has backend ${c.backend}: only backend ${o.backend} cells can be rendered with --backend ${o.backend}`,
            );
          else cells.push(c);
        }
        // Any error stops it (as validate): a quarantined or half-valid cell is never rendered.
        const diags = sortDiagnostics(diagnostics);
        if (hasErrors(diags)) {
          err(renderDiagnostics(diags, stderrColors()));
          return 1;
        }
        if (problems.length) {
          for (const p of problems) err(`error: ${p}`);
          return 1;
        }
        const objects: unknown[] = [];
        for (const c of cells.sort((a, b) => (a.name < b.name ? -1 : 1))) {
          let values: Record<string, string> | undefined;
          if (o.showSecrets) {
            values = {};
            for (const [n, s] of Object.entries(c.credentials)) {
              const r = await readSource(s, { host, hostEnv: process.env });
              if (!r.ok)
                throw new LazarusError(
                  "CREDENTIAL_REFUSED",
                  `cell ${c.name}: credential ${n}: ${r.message}; ${r.hint}`,
                );
              values[n] = r.value;
            }
          }
          objects.push(...(await renderer.objects(c, values)));
        }
        if (o.json) out(JSON.stringify(objects, null, 2));
        else if (objects.length)
          out(
            objects
              .map((x) => `---\n${stringify(x, { lineWidth: 0, aliasDuplicateObjects: false })}`)
              .join("")
              .trimEnd(),
          );
        else err(`no ${o.backend} cell to render`);
        return 0;
      }),
    );
}
