/**
 * `duet serve --exit-with-parent`: call `stop` once the process that started this one has ended. npm
 * runs a script through `sh -c`, and on SIGTERM npm signals that shell only; Debian's and
 * Ubuntu's sh (dash) then dies without passing the signal on, and duet serve, its child, would
 * go on holding the port. An orphan is adopted by another process (init or a subreaper), so
 * a parent pid that changes means the parent is gone. Checked every second; the timer does
 * not keep the process alive.
 */
export function watchParent(stop: () => void, intervalMs = 1000): void {
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(timer);
    console.error(`duet: the parent process (${parent}) ended; stopping`);
    stop();
  }, intervalMs);
  timer.unref();
}
