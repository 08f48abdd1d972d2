// Stands in for chalk's own colour detection (its vendored supports-color) in the bundle.
// vfioctl decides the colour level itself (src/cli/color.ts: NO_COLOR, --color, TTY) and
// always passes it to `new Chalk({ level })`; the detection would only load node:tty and
// probe both streams on every start-up (~2.5 ms).
export function createSupportsColor() {
  return false;
}

export default { stdout: false, stderr: false };
