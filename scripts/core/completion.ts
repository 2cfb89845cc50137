// Shell completion: the bash, zsh and fish scripts, and the words the hidden `tasks __complete` prints at completion time.
import type { AnyTask, OptionSpec } from './define.ts';

export const SHELLS = ['bash', 'zsh', 'fish'] as const;
export type Shell = (typeof SHELLS)[number];

const GLOBAL_FLAGS = ['--dry-run', '--yes', '--env', '--quiet', '--help'];

const flag = (name: string) => `--${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

/**
 * What `tasks __complete [task]` prints, one word a line: every visible task name and alias (the per-service
 * targets included, the CLI adds them before calling this), or, after a task name, that task's flags.
 */
export function completionWords(tasks: AnyTask[], after?: string): string {
  const visible = tasks.filter((t) => !t.hidden);
  if (after) {
    const t = visible.find((x) => x.name === after || x.aliases?.includes(after));
    if (!t) return '';
    const own = Object.entries((t.options ?? {}) as Record<string, OptionSpec>).map(([k]) => flag(k));
    return `${[...own, ...GLOBAL_FLAGS].join('\n')}\n`;
  }
  const words = visible.flatMap((t) => [t.name, ...(t.aliases ?? [])]);
  return `${[...new Set([...words, 'help'])].join('\n')}\n`;
}

/** The completion script for a shell. `command` is the name it completes (default `tasks`); the script asks that same command. */
export function completionScript(shell: Shell, command = 'tasks'): string {
  const fn = `_${command.replace(/[^A-Za-z0-9_]/g, '_')}_complete`;
  if (shell === 'bash') {
    return `# bash completion for ${command} (compose-tasks). Load it in ~/.bashrc:
#   source <(${command} completion bash)
# Task names (with the per-service targets) come from \`${command} __complete\` in the current project.
${fn}_ask() {
  # The command as typed; an alias (alias ${command}=./bin/tasks.mjs) is expanded, which "$cmd" alone would not do.
  local cmd="$1"; shift
  if [ "$(type -t "$cmd")" = alias ]; then eval "$cmd __complete $(printf '%q ' "$@")"; else "$cmd" __complete "$@"; fi 2>/dev/null
}
${fn}() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" words
  if [ "$COMP_CWORD" -eq 1 ] || { [ "$COMP_CWORD" -eq 2 ] && [ "\${COMP_WORDS[1]}" = help ]; }; then
    words="$(${fn}_ask "\${COMP_WORDS[0]}")"
  elif [[ "$cur" == -* ]]; then
    words="$(${fn}_ask "\${COMP_WORDS[0]}" "\${COMP_WORDS[1]}")"
  else
    COMPREPLY=()
    return 0
  fi
  local IFS=$'\\n'
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -o default -F ${fn} ${command}
`;
  }
  if (shell === 'zsh') {
    return `#compdef ${command}
# zsh completion for ${command} (compose-tasks). Load it in ~/.zshrc (after compinit):
#   source <(${command} completion zsh)
# Task names (with the per-service targets) come from \`${command} __complete\` in the current project.
${fn}() {
  local -a cands cmd
  # The command as typed; an alias (alias ${command}=./bin/tasks.mjs) is expanded.
  cmd=(\${(Q)\${(z)aliases[\${words[1]}]:-\${words[1]:-${command}}}})
  if (( CURRENT == 2 )) || { (( CURRENT == 3 )) && [[ \${words[2]} == help ]]; }; then
    cands=("\${(@f)$($cmd __complete 2>/dev/null)}")
    compadd -a cands
  elif [[ \${PREFIX} == -* ]]; then
    cands=("\${(@f)$($cmd __complete \${words[2]} 2>/dev/null)}")
    compadd -a cands
  else
    _files
  fi
}
compdef ${fn} ${command}
`;
  }
  return `# fish completion for ${command} (compose-tasks). Load it:
#   ${command} completion fish > ~/.config/fish/completions/${command}.fish
# Task names (with the per-service targets) come from \`${command} __complete\` in the current project.
function ${fn}_words
    set -l tokens (commandline -opc)
    if test (count $tokens) -le 1; or begin; test (count $tokens) -eq 2; and test "$tokens[2]" = help; end
        $tokens[1] __complete 2>/dev/null
    else
        $tokens[1] __complete $tokens[2] 2>/dev/null
    end
end
complete -c ${command} -f -a '(${fn}_words)'
`;
}
