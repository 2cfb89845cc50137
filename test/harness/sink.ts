// An output stream for main() in tests: collects what a task writes to stdout or stderr, never a terminal.
export function sink() {
  let text = '';
  return {
    write: (s: string) => {
      text += s;
      return true;
    },
    get text() {
      return text;
    },
    isTTY: false,
  };
}
