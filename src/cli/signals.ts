/**
 * Graceful shutdown on SIGTERM/SIGINT: the first signal starts `stop()`; a second one exits at once
 * (jobs still held then return to their queue when their lease expires).
 */
export async function runUntilSignalled<T>(
  stop: () => Promise<T>,
  onSecondSignal: (signal: NodeJS.Signals) => void,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) {
        onSecondSignal(signal);
        process.exit(signal === 'SIGINT' ? 130 : 143);
      }
      stopping = true;
      stop().then((value) => {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        resolve(value);
      }, reject);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}
