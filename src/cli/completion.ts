// lazarus completion bash|zsh|fish: a completion script generated from the command tree itself
// (every command, subcommand, option and choice commander knows), so it cannot drift from the CLI.
// Cell names are completed from the cells.d/ of --config (default .) and the live cells of the
// state dir, read by the shell (no node start per keystroke).
import { Argument, Command, Option } from "commander";
import { LazarusError } from "../util/errors.js";
import { action, out } from "./common.js";

export const SHELLS = ["bash", "zsh", "fish"] as const;

interface OptionInfo {
  flags: string[]; // --long and -s
  description: string;
  value: "none" | "dir" | "file" | "other";
  choices?: string[];
}

interface NodeInfo {
  path: string[]; // e.g. ["portfolio", "resolve"]
  description: string;
  subs: NodeInfo[];
  options: OptionInfo[];
  cellArg: boolean; // the first positional argument is a cell name
  fileArg: boolean; // the first positional argument is a file
}

function optionInfo(o: Option): OptionInfo {
  const flags = [o.long, o.short].filter((f): f is string => Boolean(f));
  const takes = o.required || o.optional;
  const arg = /<([^>]+)>|\[([^\]]+)\]/.exec(o.flags);
  const name = arg ? (arg[1] ?? arg[2] ?? "") : "";
  const value: OptionInfo["value"] = !takes
    ? "none"
    : /dir/.test(name)
      ? "dir"
      : /file|path/.test(name)
        ? "file"
        : "other";
  return { flags, description: o.description, value, ...(o.argChoices ? { choices: [...o.argChoices] } : {}) };
}

const HELP: OptionInfo = { flags: ["--help", "-h"], description: "display help for command", value: "none" };

function walk(cmd: Command, path: string[], globals: OptionInfo[]): NodeInfo {
  const own = cmd.options.filter((o) => !o.hidden).map(optionInfo);
  const args = (cmd as Command & { registeredArguments: readonly Argument[] }).registeredArguments;
  const first = args[0]?.name() ?? "";
  return {
    path,
    description: cmd.description(),
    subs: cmd.commands.map((c) => walk(c, [...path, c.name()], globals)),
    options: [...own, ...(path.length > 0 ? globals : []), HELP],
    cellArg: /^(name|cell|cells)$/.test(first),
    fileArg: /^(file|plan)$/.test(first),
  };
}

export function commandTree(program: Command): NodeInfo {
  const globals = program.options.filter((o) => !o.hidden && o.long !== "--version").map(optionInfo);
  const root = walk(program, [], globals);
  root.subs.push({
    path: ["help"],
    description: "display help for command",
    subs: [],
    options: [HELP],
    cellArg: false,
    fileArg: false,
  });
  return root;
}

function flatten(n: NodeInfo): NodeInfo[] {
  return [n, ...n.subs.flatMap(flatten)];
}

const sq = (s: string): string => `'${s.replaceAll("'", `'\\''`)}'`;
const words = (list: readonly string[]): string => sq(list.join(" "));

// A bash function `__lazarus_<name>` that echoes the value of the row whose key is its first argument.
function caseTable(name: string, rows: [string, string][]): string[] {
  return [`__lazarus_${name}() {`, '  case "$1" in', ...rows.map(([k, v]) => `    ${k}) echo ${v} ;;`), "  esac", "}"];
}

// The case tables keyed by command path: subcommands, options (all, and by the kind of value they
// take), the choices of each option, and what the first positional argument is (cell or file).
function bashTables(nodes: NodeInfo[]): string[] {
  const key = (n: NodeInfo): string => sq(n.path.join(" "));
  const valued = (n: NodeInfo, kind: OptionInfo["value"]): string[] =>
    n.options.filter((o) => o.value === kind).flatMap((o) => o.flags);
  return [
    ...caseTable(
      "subs",
      nodes
        .filter((n) => n.subs.length > 0)
        .map((n) => [key(n), words(n.subs.map((s) => s.path[s.path.length - 1] as string))]),
    ),
    ...caseTable(
      "opts",
      nodes.map((n) => [key(n), words(n.options.flatMap((o) => o.flags))]),
    ),
    ...caseTable(
      "dir_opts",
      nodes.map((n) => [key(n), words(valued(n, "dir"))]),
    ),
    ...caseTable(
      "file_opts",
      nodes.map((n) => [key(n), words(valued(n, "file"))]),
    ),
    ...caseTable(
      "other_opts",
      nodes.map((n) => [key(n), words(valued(n, "other"))]),
    ),
    ...caseTable(
      "choices",
      nodes.flatMap((n) =>
        n.options
          .filter((o) => o.choices)
          .flatMap((o) =>
            o.flags.map((f): [string, string] => [sq(`${n.path.join(" ")}|${f}`), words(o.choices as string[])]),
          ),
      ),
    ),
    ...caseTable(
      "arg",
      nodes.filter((n) => n.cellArg || n.fileArg).map((n) => [key(n), n.cellArg ? "cell" : "file"]),
    ),
  ];
}

// Shell helpers: the cell names of the --config dir's cells.d/ and of the state dir, and a word-in-list test.
const BASH_HELPERS = [
  "# the cells of the --config dir's cells.d/ (metadata.name) and of the state dir",
  "__lazarus_cells() {",
  '  local config="$1" state="$2" f',
  '  for f in "$config"/cells.d/*.yaml "$config"/cells.d/*.yml; do',
  '    [ -f "$f" ] && sed -n "s/^  name: *[\\"\']\\{0,1\\}\\([a-z0-9-]*\\).*/\\1/p" "$f"',
  "  done",
  '  [ -n "$state" ] && [ -d "$state/cells" ] && ls "$state/cells" 2>/dev/null',
  "}",
  '__lazarus_has() { case " $1 " in *" $2 "*) return 0 ;; esac; return 1; }',
];

// The completion function: walks the words typed so far (skipping options and their values) to find
// the command path, then offers a choice, a directory, a file, an option, a subcommand or a cell.
const BASH_COMPLETE = [
  "_lazarus() {",
  '  local cur="${COMP_WORDS[COMP_CWORD]}" prev="" cmd="" npos=0 i w config=. state="${LAZARUS_STATE_DIR:-}"',
  '  [ "$COMP_CWORD" -gt 0 ] && prev="${COMP_WORDS[COMP_CWORD-1]}"',
  "  COMPREPLY=()",
  "  for ((i = 1; i < COMP_CWORD; i++)); do",
  '    w="${COMP_WORDS[i]}"',
  '    case "$w" in',
  "      --) break ;;",
  "      -*)",
  '        if __lazarus_has "$(__lazarus_dir_opts "$cmd") $(__lazarus_file_opts "$cmd") $(__lazarus_other_opts "$cmd")" "$w"; then',
  '          case "$w" in -c|--config) config="${COMP_WORDS[i+1]}" ;; -s|--state-dir) state="${COMP_WORDS[i+1]}" ;; esac',
  "          i=$((i + 1))",
  "        fi ;;",
  "      *)",
  '        if [ "$npos" -eq 0 ] && __lazarus_has "$(__lazarus_subs "$cmd")" "$w"; then cmd="${cmd:+$cmd }$w"; else npos=$((npos + 1)); fi ;;',
  "    esac",
  "  done",
  '  local choices; choices="$(__lazarus_choices "$cmd|$prev")"',
  '  if [ -n "$choices" ]; then COMPREPLY=($(compgen -W "$choices" -- "$cur")); return 0; fi',
  '  if __lazarus_has "$(__lazarus_dir_opts "$cmd")" "$prev"; then COMPREPLY=($(compgen -d -- "$cur")); return 0; fi',
  '  if __lazarus_has "$(__lazarus_file_opts "$cmd")" "$prev"; then COMPREPLY=($(compgen -f -- "$cur")); return 0; fi',
  '  if __lazarus_has "$(__lazarus_other_opts "$cmd")" "$prev"; then return 0; fi',
  '  case "$cur" in -*) COMPREPLY=($(compgen -W "$(__lazarus_opts "$cmd")" -- "$cur")); return 0 ;; esac',
  '  local subs; subs="$(__lazarus_subs "$cmd")"',
  '  if [ -n "$subs" ] && [ "$npos" -eq 0 ]; then COMPREPLY=($(compgen -W "$subs" -- "$cur")); return 0; fi',
  '  case "$(__lazarus_arg "$cmd")" in',
  '    cell) [ "$npos" -eq 0 ] || [ "$cmd" = verify ] && COMPREPLY=($(compgen -W "$(__lazarus_cells "$config" "$state")" -- "$cur")) ;;',
  '    file) COMPREPLY=($(compgen -f -- "$cur")) ;;',
  "  esac",
  "  return 0",
  "}",
  "complete -F _lazarus lazarus",
];

// bash (and zsh through bashcompinit): a few case tables keyed by the command path.
export function bashScript(root: NodeInfo, forZsh = false): string {
  const lines = [
    "# lazarus completion for bash" + (forZsh ? " (loaded into zsh through bashcompinit)" : ""),
    `# ${forZsh ? 'zsh: eval "$(lazarus completion zsh)" in ~/.zshrc (after compinit, if you call it)' : 'bash: eval "$(lazarus completion bash)" in ~/.bashrc, or save it to /etc/bash_completion.d/lazarus'}`,
    ...bashTables(flatten(root)),
    ...BASH_HELPERS,
    ...BASH_COMPLETE,
    "",
  ];
  if (forZsh)
    lines.splice(
      2,
      0,
      "autoload -U +X compinit && { (( $+functions[compdef] )) || compinit; }",
      "autoload -U +X bashcompinit && bashcompinit",
    );
  return lines.join("\n");
}

// fish: one `complete` line per subcommand and option, conditioned on the command path.
export function fishScript(root: NodeInfo): string {
  const nodes = flatten(root);
  const fq = (s: string): string => `'${s.replaceAll("\\", "\\\\").replaceAll("'", "\\'")}'`;
  // The command path is seen, and (for a node with subcommands) none of them yet.
  const cond = (n: NodeInfo): string => {
    const parts = n.path.length === 0 ? ["__fish_use_subcommand"] : [`__lazarus_path ${n.path.join(" ")}`];
    return fq(parts.join("; and "));
  };
  const lines = [
    "# lazarus completion for fish: lazarus completion fish > ~/.config/fish/completions/lazarus.fish",
    "# true when the words after `lazarus` (options skipped) start with exactly this command path",
    "function __lazarus_path",
    "    set -l want $argv",
    "    set -l got",
    "    set -l subs " + nodes.flatMap((n) => n.subs.map((s) => s.path.join("/"))).join(" "),
    "    set -l words (commandline -opc)",
    "    set -e words[1]",
    "    for w in $words",
    "        string match -q -- '-*' $w; and continue",
    "        set -l candidate (string join / $got $w)",
    "        contains -- $candidate $subs; and set got $got $w; or break",
    "    end",
    '    test "$got" = "$want"',
    "end",
    "function __lazarus_cells",
    "    set -l config .",
    "    set -l state $LAZARUS_STATE_DIR",
    "    set -l words (commandline -opc)",
    "    for i in (seq (count $words))",
    "        switch $words[$i]",
    "            case -c --config",
    "                set config $words[(math $i + 1)]",
    "            case -s --state-dir",
    "                set state $words[(math $i + 1)]",
    "        end",
    "    end",
    "    for f in $config/cells.d/*.yaml $config/cells.d/*.yml",
    "        string replace -rf '^  name: *[\"\\']?([a-z0-9-]+).*' '$1' < $f",
    "    end",
    '    test -n "$state"; and test -d "$state/cells"; and ls "$state/cells"',
    "end",
    "complete -c lazarus -f",
  ];
  for (const n of nodes) {
    for (const s of n.subs)
      lines.push(
        `complete -c lazarus -n ${cond(n)} -a ${fq(s.path[s.path.length - 1] as string)} -d ${fq(s.description)}`,
      );
    for (const o of n.options) {
      const long = o.flags.find((f) => f.startsWith("--"));
      const short = o.flags.find((f) => !f.startsWith("--"));
      const value = o.choices
        ? ` -x -a ${fq(o.choices.join(" "))}`
        : o.value === "dir"
          ? ` -x -a '(__fish_complete_directories)'`
          : o.value === "file"
            ? " -r -F"
            : o.value === "other"
              ? " -x"
              : "";
      lines.push(
        `complete -c lazarus -n ${cond(n)}${long ? ` -l ${long.slice(2)}` : ""}${short ? ` -s ${short.slice(1)}` : ""}${value} -d ${fq(o.description)}`,
      );
    }
    if (n.cellArg) lines.push(`complete -c lazarus -n ${cond(n)} -a '(__lazarus_cells)'`);
    if (n.fileArg) lines.push(`complete -c lazarus -n ${cond(n)} -F`);
  }
  return `${lines.join("\n")}\n`;
}

export function completionCommand(): Command {
  return new Command("completion")
    .description(
      'print a shell completion script: eval "$(lazarus completion bash)" (commands, options, choices, cell names)',
    )
    .argument("<shell>", `one of ${SHELLS.join(", ")}`)
    .action(
      action(async (shell: string, _o: unknown, cmd: Command) => {
        const program = cmd.parent;
        if (!program) throw new LazarusError("BUG", "completion has no parent command");
        const tree = commandTree(program);
        if (shell === "bash") out(bashScript(tree));
        else if (shell === "zsh") out(bashScript(tree, true));
        else if (shell === "fish") out(fishScript(tree));
        else throw new LazarusError("BAD_ARGS", `no completion for shell "${shell}": use one of ${SHELLS.join(", ")}`);
        return 0;
      }),
    );
}
